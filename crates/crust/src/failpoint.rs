//! Test-only fault injection at named steps (feature `failpoints`; compiled out otherwise).
//!
//! `CRUST_FAILPOINTS="run:after_create=error,run:after_start=abort,run:before_start=sleep:3000"`
//! makes the named point return an error, abort the daemon (a crash at that step), or sleep.

/// What a failpoint does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Error,
    Abort,
    SleepMs(u64),
}

/// The action configured for `name`, if any.
pub fn action(name: &str) -> Option<Action> {
    if !cfg!(feature = "failpoints") {
        return None;
    }
    let spec = std::env::var("CRUST_FAILPOINTS").ok()?;
    parse(&spec, name)
}

fn parse(spec: &str, name: &str) -> Option<Action> {
    spec.split(',').find_map(|item| {
        let (n, a) = item.split_once('=')?;
        if n.trim() != name {
            return None;
        }
        match a.trim() {
            "error" => Some(Action::Error),
            "abort" => Some(Action::Abort),
            s => s.strip_prefix("sleep:")?.parse().ok().map(Action::SleepMs),
        }
    })
}

/// Evaluates the failpoint `name`: `Err(())` when it says to fail.
pub async fn hit(name: &'static str) -> Result<(), ()> {
    match action(name) {
        None => Ok(()),
        Some(Action::Error) => Err(()),
        Some(Action::Abort) => {
            tracing::error!(failpoint = name, "failpoint abort");
            std::process::abort()
        }
        Some(Action::SleepMs(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions() {
        let s = "a=error, b=abort,c=sleep:20";
        assert_eq!(parse(s, "a"), Some(Action::Error));
        assert_eq!(parse(s, "b"), Some(Action::Abort));
        assert_eq!(parse(s, "c"), Some(Action::SleepMs(20)));
        assert_eq!(parse(s, "d"), None);
    }
}
