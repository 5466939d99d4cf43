use dspex::Context;

#[tokio::main(flavor = "current_thread")]
async fn main() -> dspex::Result<()> {
    let _ctx = Context::builder()
        .shared("redis://127.0.0.1:6379/0")
        .build()
        .await?;
    Ok(())
}
