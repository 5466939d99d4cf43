use dspex::prelude::*;

/// A `Module`, but without `Default`: the macro cannot build it.
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

fn main() {}
