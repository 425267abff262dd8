//! Links `many-suite-relr` with packed relative relocations (`-z pack-relative-relocs`, DT_RELR:
//! GNU ld >= 2.38 or lld, glibc >= 2.36). A binary of 10,000 registered tests holds ~40,000
//! pointers the loader must relocate; as RELA entries they are 24 bytes each, read whole at
//! start-up (1.2 MB), as RELR a bitmap of a few KB. The overhead bench prints both links' peak
//! RSS, so the README's advice to large suites is a figure measured on every CI run.

fn main() {
    println!("cargo::rustc-link-arg-bin=many-suite-relr=-Wl,-z,pack-relative-relocs");
    println!("cargo::rerun-if-changed=build.rs");
}
