// 10,000 trivial tests (a0..a9 :: m0..m9 :: n0..n9 :: t0..t9), included by src/many_main.rs
// and tests/many_suite.rs, for the overhead benchmarks (benches/overhead.rs). The first
// level's prefix is unique, so the libtest filter `a0::` selects exactly 1,000 of them.

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

macro_rules! ten_n {
    () => {
        mod n0 {
            ten_tests!();
        }
        mod n1 {
            ten_tests!();
        }
        mod n2 {
            ten_tests!();
        }
        mod n3 {
            ten_tests!();
        }
        mod n4 {
            ten_tests!();
        }
        mod n5 {
            ten_tests!();
        }
        mod n6 {
            ten_tests!();
        }
        mod n7 {
            ten_tests!();
        }
        mod n8 {
            ten_tests!();
        }
        mod n9 {
            ten_tests!();
        }
    };
}

macro_rules! ten_m {
    () => {
        mod m0 {
            ten_n!();
        }
        mod m1 {
            ten_n!();
        }
        mod m2 {
            ten_n!();
        }
        mod m3 {
            ten_n!();
        }
        mod m4 {
            ten_n!();
        }
        mod m5 {
            ten_n!();
        }
        mod m6 {
            ten_n!();
        }
        mod m7 {
            ten_n!();
        }
        mod m8 {
            ten_n!();
        }
        mod m9 {
            ten_n!();
        }
    };
}

mod a0 {
    ten_m!();
}
mod a1 {
    ten_m!();
}
mod a2 {
    ten_m!();
}
mod a3 {
    ten_m!();
}
mod a4 {
    ten_m!();
}
mod a5 {
    ten_m!();
}
mod a6 {
    ten_m!();
}
mod a7 {
    ten_m!();
}
mod a8 {
    ten_m!();
}
mod a9 {
    ten_m!();
}
