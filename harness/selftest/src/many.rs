// 1,000 trivial tests (10 × 10 × 10 modules × functions), included by src/many_main.rs and
// tests/many_suite.rs, for the per-test overhead benchmark (benches/overhead.rs).

macro_rules! ten_tests {
    () => {
        #[reliability_harness::test]
        fn t0() {}
        #[reliability_harness::test]
        fn t1() {}
        #[reliability_harness::test]
        fn t2() {}
        #[reliability_harness::test]
        fn t3() {}
        #[reliability_harness::test]
        fn t4() {}
        #[reliability_harness::test]
        fn t5() {}
        #[reliability_harness::test]
        fn t6() {}
        #[reliability_harness::test]
        fn t7() {}
        #[reliability_harness::test]
        fn t8() {}
        #[reliability_harness::test]
        fn t9() {}
    };
}

macro_rules! ten_modules {
    ($inner:ident) => {
        mod m0 {
            $inner!();
        }
        mod m1 {
            $inner!();
        }
        mod m2 {
            $inner!();
        }
        mod m3 {
            $inner!();
        }
        mod m4 {
            $inner!();
        }
        mod m5 {
            $inner!();
        }
        mod m6 {
            $inner!();
        }
        mod m7 {
            $inner!();
        }
        mod m8 {
            $inner!();
        }
        mod m9 {
            $inner!();
        }
    };
}

macro_rules! hundred_tests {
    () => {
        ten_modules!(ten_tests);
    };
}

ten_modules!(hundred_tests);
