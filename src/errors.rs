//! Error text shared by every stage: an error and its causes on one line,
//! each said once (a cause whose text its wrapper already quotes, as in
//! `{path}: {source}`, is not repeated).

use std::error::Error;

/// `e` and its causes on one line, each said once.
pub fn error_line(e: &(dyn Error + 'static)) -> String {
    with_causes(e.to_string(), e.source())
}

/// `head` followed by `cause` and its own causes, each said once.
pub fn with_causes(mut head: String, mut cause: Option<&(dyn Error + 'static)>) -> String {
    while let Some(c) = cause {
        let text = c.to_string();
        if !head.contains(&text) {
            head.push_str(": ");
            head.push_str(&text);
        }
        cause = c.source();
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("nope.csv: {0}")]
    struct Holds(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the dataset")]
    struct Wraps(#[source] Holds);

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(error_line(&Holds(io())), "nope.csv: no such file");
        assert_eq!(
            error_line(&Wraps(Holds(io()))),
            "cannot read the dataset: nope.csv: no such file"
        );
    }
}
