// The fixture tests, included (not `mod`-ed) by src/main.rs and tests/fixture_suite.rs so
// that their names have no extra module prefix. See src/main.rs for what they are for.

use std::io::Write;

use reliability_harness as rh;

/// Appends the current test's name to `$FIXTURE_RUN_LOG`.
fn record() {
    let name = rh::current_test().expect("record() is called from a test");
    if let Some(path) = std::env::var_os("FIXTURE_RUN_LOG") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open FIXTURE_RUN_LOG");
        // One write per line: O_APPEND keeps lines whole when tests run in parallel.
        file.write_all(format!("{name}\n").as_bytes()).expect("write FIXTURE_RUN_LOG");
    }
}

mod basic {
    use super::*;

    #[rh::test]
    fn plain() {
        record();
    }

    #[rh::test(smoke)]
    fn smoke_check() {
        record();
    }
}

mod api {
    use super::*;

    #[rh::test]
    async fn async_ok() {
        tokio_free_sleep().await;
        record();
    }

    /// An async body that really suspends, without naming tokio in the fixture.
    async fn tokio_free_sleep() {
        std::future::ready(()).await;
    }

    #[rh::test]
    fn returns_ok() -> Result<(), String> {
        record();
        Ok(())
    }

    #[rh::test]
    #[case(2, 4)]
    #[case(-3, 9)]
    fn square(x: i64, expected: i64) {
        assert_eq!(x * x, expected);
        record();
    }
}

mod delivery {
    use super::*;

    #[rh::test(e2e)]
    fn baseline() {
        record();
    }

    #[rh::test(e2e)]
    async fn paced() {
        record();
    }

    #[rh::test(e2e, slow)]
    #[case(1000)]
    #[case(10_000)]
    #[case(id = "huge", 100_000, markers(chaos))]
    fn ladder(spans: u64) {
        assert!(spans >= 1000);
        record();
    }
}

mod chaos {
    use super::*;

    #[rh::test(chaos)]
    fn kill_backend() {
        record();
    }

    #[rh::test(chaos, slow)]
    fn slow_partition() {
        record();
    }
}

mod soak {
    use super::*;

    #[rh::test(soak)]
    fn overnight() {
        record();
    }
}
