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

dspex_program! {
    program Qa: "question -> category" {
        chain {
            classify: native Classifier("question -> category"),
        }
    }
}

async fn start() -> Result<()> {
    // Neither given nor `Default`: both are errors naming the step.
    let _ = Qa::start().await?;
    let _ = Qa::builder().start().await?;
    // Given: fine.
    let _ = Qa::builder().classify(Classifier { labels: vec![] }).start().await?;
    Ok(())
}

fn main() {
    let _ = start();
}
