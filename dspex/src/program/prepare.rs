//! Getting a context ready for a program: a context on the backend the program needs, and the
//! program's variables registered into it. Generated code calls these through
//! `dspex::__private`; the runtime builder calls them directly.

use dspex_core::program::ProgramSpec;

use crate::context::Context;
use crate::error::{Error, Result};

/// A new context on the backend `spec` needs: local for a native program; bridged for one
/// with a python step, its worker starting at once (in the background: the first python
/// step's attach waits for it).
pub async fn context_for(spec: &ProgramSpec) -> Result<Context> {
    if !spec.requires_bridge() {
        return Ok(Context::new());
    }
    #[cfg(not(feature = "python"))]
    {
        let step = spec
            .steps
            .iter()
            .find(|s| s.is_python())
            .map_or("?", |s| s.name.as_str());
        Err(super::python::feature_error(&spec.name, step))
    }
    #[cfg(feature = "python")]
    {
        let ctx = Context::builder().bridged().build().await?;
        ctx.mark_requires_bridge();
        let warming = ctx.clone();
        crate::worker::runtime()?.spawn(async move {
            if let Err(e) = warming.worker().await {
                tracing::debug!(error = %e, "the worker did not start in the background; the first python step will report why");
            }
        });
        Ok(ctx)
    }
}

/// Registers `spec`'s variables into `ctx`, all or nothing: a variable the context already
/// holds is shared if its type, constraints and read-only flag are the same, and an error
/// otherwise.
pub async fn prepare_context(ctx: &Context, spec: &ProgramSpec) -> Result<()> {
    let mut fresh = Vec::new();
    for var in &spec.variables {
        match ctx.record(&var.name) {
            Ok(existing)
                if existing.ty == var.ty
                    && existing.constraints == var.constraints
                    && existing.readonly == var.readonly => {}
            Ok(existing) => {
                return Err(Error::IncompatibleVariable {
                    name: var.name.clone(),
                    program: spec.name.clone(),
                    existing: describe(existing.ty, &existing.constraints, existing.readonly),
                    declared: describe(var.ty, &var.constraints, var.readonly),
                });
            }
            Err(Error::NotFound { .. }) => fresh.push(var),
            Err(e) => return Err(e),
        }
    }
    for (i, var) in fresh.iter().enumerate() {
        if let Err(e) = ctx.register((*var).clone()) {
            // Undo this call's registrations so that a failed attach leaves nothing behind.
            for done in &fresh[..i] {
                let _ = ctx.delete(&done.name);
            }
            return Err(e);
        }
    }
    if spec.requires_bridge() {
        ctx.mark_requires_bridge();
    }
    Ok(())
}

fn describe(ty: dspex_core::VarType, c: &dspex_core::Constraints, readonly: bool) -> String {
    let kind = if readonly {
        format!("a read-only {ty}")
    } else {
        format!("{} {ty}", ty.article())
    };
    format!("{kind} variable (constraints: {c})")
}

#[cfg(test)]
mod tests {
    use dspex_core::{Constraints, VarType, VariableSpec};

    use super::*;

    fn spec(variable: VariableSpec) -> ProgramSpec {
        ProgramSpec {
            name: "P".to_owned(),
            signature: None,
            variables: vec![variable],
            steps: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_shared_variable_must_agree_on_being_read_only() {
        let ctx = Context::new();
        let open = VariableSpec::new("t", VarType::Float, 0.5)
            .with_constraints(Constraints::range(0.0, 1.0));
        prepare_context(&ctx, &spec(open.clone())).await.unwrap();
        // The same declaration is shared.
        prepare_context(&ctx, &spec(open.clone())).await.unwrap();
        let err = prepare_context(&ctx, &spec(open.readonly()))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "variable `t` already exists in the context as a float variable (constraints: min 0.0, max 1.0); program `P` declares a read-only float variable (constraints: min 0.0, max 1.0)"
        );
        assert!(!ctx.record("t").unwrap().readonly);
    }
}
