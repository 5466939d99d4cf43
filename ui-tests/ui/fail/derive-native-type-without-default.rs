use dspex::prelude::*;

/// A `Module`, but without `Default`: the program needs it given as a value.
struct Classifier {
    labels: Vec<String>,
}

impl Module for Classifier {
    async fn forward(&self, _: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("category", self.labels.join(","))]))
    }
}

#[derive(Program)]
#[program(signature = "question -> category")]
struct Qa {
    #[step(native, signature = "question -> category")]
    classify: Classifier,
    ctx: Context,
}

async fn attach(ctx: &Context) -> Result<()> {
    // Neither given nor `Default`: both are errors naming the step.
    let _ = Qa::attach(ctx).await?;
    let _ = Qa::builder().attach(ctx).await?;
    // Given: fine.
    let _ = Qa::builder().classify(Classifier { labels: vec![] }).attach(ctx).await?;
    Ok(())
}

fn main() {
    let _ = attach(&Context::new());
}
