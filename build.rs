// sqlx::migrate! embeds migrations at compile time; rebuild when one is added or changed.
// rust-embed (`debug-embed`: debug builds too) embeds ui/dist: rebuild when the UI is rebuilt.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=ui/dist");
}
