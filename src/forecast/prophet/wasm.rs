//! Readable errors from the WASM optimizer (cargo feature `wasmstan`):
//! wasmtime appends a WASM stack trace (dozens of mangled C++ frames) to
//! every Stan failure.

use augurs_prophet::optimizer::{self, Data, InitialParams, OptimizeOpts, OptimizedParams};

#[derive(Debug)]
pub(super) struct Trimmed(pub augurs_prophet::wasmstan::WasmstanOptimizer);

impl optimizer::Optimizer for Trimmed {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &Data,
        opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, optimizer::Error> {
        self.0
            .optimize(init, data, opts)
            .map_err(|e| optimizer::Error::string(without_backtrace(&e.to_string())))
    }
}

/// `message` without WASM backtrace lines (`  12:  0x4e488 - module!fn`)
/// and their heading, on one line.
pub(super) fn without_backtrace(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            let frame = l.split_once(':').is_some_and(|(n, rest)| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && rest.trim_start().starts_with("0x")
            });
            !l.is_empty() && !frame
        })
        .map(|l| match l.strip_suffix(" at wasm backtrace:") {
            Some(head) => format!("{head} (WASM stack trace omitted)"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn drops_wasm_frames_and_keeps_the_reason() {
        let raw = "Error in optimization: Error running component: error while executing at wasm backtrace:\n    0:   0x414e - prophet-wasmstan-core.wasm!abort\n    1:  0x1778e - prophet-wasmstan-core.wasm!__cxa_allocate_exception\n";
        assert_eq!(
            super::without_backtrace(raw),
            "Error in optimization: Error running component: error while executing \
             (WASM stack trace omitted)"
        );
        let ls = "Optimization terminated with error: \n  Line search failed to achieve a sufficient decrease, no more progress can be made\n";
        assert_eq!(
            super::without_backtrace(ls),
            "Optimization terminated with error: Line search failed to achieve a sufficient decrease, no more progress can be made"
        );
    }
}
