//! `many-suite-alloc` again, linked with packed relative relocations (`build.rs`): the overhead
//! bench measures what that link flag saves a binary of 10,000 registered tests.

include!("many.rs");

reliability_harness::global_allocator!();

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
