//! Recognising what `#[async_trait]` made of a method: the boxed future it returns, its
//! `Box::pin(async move { .. })` body and the prologue that rebinds the arguments.

use syn::{Block, Expr, GenericArgument, Pat, PathArguments, ReturnType, Stmt, Type, TypeParamBound};

/// The `Output` of `Pin<Box<dyn Future<Output = ..> ..>>`, if that is the return type.
pub(crate) fn boxed_async_output(output: &mut ReturnType) -> Option<&mut Type> {
    let ReturnType::Type(_, ty) = output else { return None };
    let pin = last_segment_args(ty, "Pin")?;
    let boxed = single_type_arg(pin)?;
    let boxed = last_segment_args(boxed, "Box")?;
    let Type::TraitObject(object) = single_type_arg(boxed)? else { return None };
    object.bounds.iter_mut().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else { return None };
        let future = bound.path.segments.last_mut().filter(|segment| segment.ident == "Future")?;
        let PathArguments::AngleBracketed(generics) = &mut future.arguments else { return None };
        generics.args.iter_mut().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&mut assoc.ty),
            _ => None,
        })
    })
}

fn last_segment_args<'a>(ty: &'a mut Type, name: &str) -> Option<&'a mut PathArguments> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last_mut().filter(|segment| segment.ident == name)?;
    Some(&mut last.arguments)
}

fn single_type_arg(arguments: &mut PathArguments) -> Option<&mut Type> {
    let PathArguments::AngleBracketed(generics) = arguments else { return None };
    match generics.args.iter_mut().next()? {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    }
}

/// The async block of a body that is exactly `Box::pin(async move { .. })`.
pub(crate) fn boxed_async_block(block: &Block) -> Option<&syn::ExprAsync> {
    let [Stmt::Expr(Expr::Call(call), None)] = block.stmts.as_slice() else { return None };
    let Expr::Path(function) = &*call.func else { return None };
    let mut segments = function.path.segments.iter().rev();
    if segments.next()?.ident != "pin" || segments.next()?.ident != "Box" || call.args.len() != 1 {
        return None;
    }
    match call.args.first()? {
        Expr::Async(inner) if inner.capture.is_some() => Some(inner),
        _ => None,
    }
}

pub(crate) fn boxed_async_block_mut(block: &mut Block) -> Option<&mut Expr> {
    let [Stmt::Expr(Expr::Call(call), None)] = block.stmts.as_mut_slice() else { return None };
    call.args.first_mut()
}

/// `#[async_trait]` opens its block with a fake return (`if let Some(__ret) = None::<R>`),
/// then rebinds the arguments (`let __self = self; let x = x;`), then runs the body. The
/// rebinding moves the arguments into the block; it is hoisted out of the part we wrap, so
/// `client`, `webhooks` and `idempotent_key` can still use them after the body ran.
pub(crate) fn split_async_trait_prologue(stmts: Vec<Stmt>) -> (Vec<Stmt>, Vec<Stmt>) {
    let mut hoisted = Vec::new();
    let mut rest = Vec::new();
    let mut in_prologue = true;
    for stmt in stmts {
        if in_prologue {
            match &stmt {
                Stmt::Local(local) if !matches!(local.pat, Pat::Type(_)) => {
                    hoisted.push(stmt);
                    continue;
                }
                Stmt::Expr(Expr::If(fake), _) if is_none_check(&fake.cond) => {
                    rest.push(stmt);
                    continue;
                }
                _ => in_prologue = false,
            }
        }
        rest.push(stmt);
    }
    (hoisted, rest)
}

/// `let Some(__ret) = None::<R>`.
fn is_none_check(condition: &Expr) -> bool {
    let Expr::Let(binding) = condition else { return false };
    let Expr::Path(path) = &*binding.expr else { return false };
    path.path.segments.last().is_some_and(|segment| segment.ident == "None")
}

/// The name `#[async_trait]` gave `self` (`let __self = self;`).
pub(crate) fn bound_self(stmt: &Stmt) -> Option<syn::Ident> {
    let Stmt::Local(local) = stmt else { return None };
    let Pat::Ident(binding) = &local.pat else { return None };
    let init = local.init.as_ref()?;
    let Expr::Path(path) = &*init.expr else { return None };
    path.path.is_ident("self").then(|| binding.ident.clone())
}
