//! Every input under `fuzz/regressions/TARGET/` (hostile inputs found by
//! probing and fuzzing) still passes its fuzz target.

use cpu_anomaly::fuzz::TARGETS;

#[test]
fn every_saved_input_passes_its_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut ran = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                panic!("{} fails {name}", path.display());
            }
            ran += 1;
        }
    }
    assert!(ran >= TARGETS.len(), "only {ran} inputs");
}
