//! Stops the shared PostgreSQL cluster that the test suite leaves running under
//! `target/test-pg` (CI calls this after the tests). Usage: `cargo run --example stop-test-cluster`.

#[tokio::main]
async fn main() {
    match mutask::testing::stop_shared_cluster().await {
        Ok(true) => println!("stopped the shared test cluster"),
        Ok(false) => println!("the shared test cluster was not running"),
        Err(e) => {
            eprintln!("stop-test-cluster: {e}");
            std::process::exit(1);
        }
    }
}
