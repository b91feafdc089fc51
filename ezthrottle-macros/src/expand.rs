//! The code `#[auto_forward]` generates.
//!
//! The function item is kept (attributes, visibility, signature, the body's braces); only
//! the return type changes, from `Result<T, E>` to `Result<Outcome<T>, AutoForwardError<E>>`,
//! and the body's statements are wrapped. For an `async fn`, with `__private` the runtime
//! module and every name hygienic:
//!
//! ```text
//! let key = <idempotent_key>;                          // only with `idempotent_key`
//! let (error, request) = {
//!     let error = match async { <fake return edge> <body> }.await {
//!         Ok(value) => return Ok(Outcome::Completed(value)),
//!         Err(error) => error,
//!     };
//!     let Some(request) = __private::forward_request(&error) else {  // or http_forward_request
//!         return __private::not_forwarded(error);     // Err(AutoForwardError::Failed(error))
//!     };
//!     let request = __private::set_step(request, ..); // and the other options
//!     (error, request)
//! };
//! let client = &(<client>);                           // only with `client`
//! __private::forward_async(error, __private::client(client), request).await
//! ```
//!
//! The `Ok` path allocates nothing and evaluates neither `client` nor `webhooks`; the future
//! keeps the body's future, then a single `Box` (the error and the submission). A sync `fn`
//! runs its body in `(|| { <fake return edge> <body> })()` and ends with
//! `__private::forward_sync(..)`, which submits on the forwarding thread. Under
//! `#[async_trait]`, the same is done inside its `Box::pin(async move { .. })`.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Block, Expr, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Stmt, Type, TypeParamBound, parse_quote,
};

use crate::attr::{Args, StepKind};

/// Expands the attribute; on any error, the original item is kept next to the error so IDEs
/// keep working.
pub(crate) fn auto_forward(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(error) => return with_error(item, error),
    };
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = match syn::parse2::<syn::TraitItemFn>(item.clone()) {
                Ok(declaration) => syn::Error::new_spanned(
                    &declaration.sig,
                    "`#[auto_forward]` needs the function's body: put it on the method of the `impl` block, \
                     not on the trait's declaration",
                ),
                Err(_) => {
                    syn::Error::new_spanned(&item, "`#[auto_forward]` applies to a `fn` or `async fn` with a body")
                }
            };
            return with_error(item, error);
        }
    };
    match expand(args, function) {
        Ok(tokens) => tokens,
        Err(error) => with_error(item, error),
    }
}

fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote!(#item #error)
}

/// How the function runs its body.
enum Shape {
    /// `async fn`.
    Async,
    /// A `fn` whose body is `Box::pin(async move { .. })` and whose return type is
    /// `Pin<Box<dyn Future<Output = Result<..>> ..>>`: what `#[async_trait]` makes of an
    /// `async fn`.
    BoxedAsync,
    /// A plain `fn`.
    Sync,
}

/// The internal names, hygienic (`Span::mixed_site()`), so user code can neither see nor
/// shadow them. No leading underscore: clippy's `used_underscore_binding` would fire.
struct Names {
    result: syn::Ident,
    value: syn::Ident,
    error: syn::Ident,
    request: syn::Ident,
    key: syn::Ident,
    token: syn::Ident,
    fake: syn::Ident,
}

impl Names {
    fn new() -> Self {
        let name = |text: &str| syn::Ident::new(text, Span::mixed_site());
        Self {
            result: name("auto_forward_result"),
            value: name("auto_forward_value"),
            error: name("auto_forward_error"),
            request: name("auto_forward_request"),
            key: name("auto_forward_key"),
            token: name("auto_forward_once"),
            fake: name("auto_forward_fake_return"),
        }
    }
}

/// The user's `Result<T, E>` and what it becomes.
struct ResultType {
    /// As written, `impl Trait` erased to `_`: the type of the fake return edge.
    erased: Type,
    /// Where the user wrote it.
    span: Span,
    /// `E`'s span, for trait errors about the error type.
    error_span: Span,
    /// `Result<Outcome<T>, AutoForwardError<E>>`.
    transformed: Type,
}

fn expand(args: Args, mut function: ItemFn) -> syn::Result<TokenStream> {
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "`#[auto_forward]` cannot be used on a `const fn`: forwarding happens at run time",
        ));
    }
    let krate = args.krate.clone().unwrap_or_else(|| parse_quote!(::ezthrottle));
    let private = quote!(#krate::__private);
    let names = Names::new();

    let shape = if function.sig.asyncness.is_some() {
        Shape::Async
    } else if boxed_async_output(&mut function.sig.output).is_some() && boxed_async_block(&function.block).is_some() {
        Shape::BoxedAsync
    } else {
        Shape::Sync
    };

    match shape {
        Shape::Async | Shape::Sync => {
            let ReturnType::Type(_, declared) = &mut function.sig.output else {
                return Err(syn::Error::new_spanned(
                    &function.sig,
                    "`#[auto_forward]` requires a function returning `Result<T, E>`; this one returns `()`",
                ));
            };
            let result = result_type(declared, &private)?;
            **declared = result.transformed.clone();
            let block = &function.block;
            let body = match shape {
                Shape::Async => async_body(&args, &private, &names, &result, block, None),
                _ => sync_body(&args, &private, &names, &result, block),
            };
            // Only the statements change: the braces keep the user's spans, so the item's
            // own span (and lints such as `dead_code` on it) stays in user code.
            function.block.stmts = parse_quote!(#body);
        }
        Shape::BoxedAsync => {
            let Some(output) = boxed_async_output(&mut function.sig.output) else {
                return Err(syn::Error::new(Span::call_site(), "internal error: the future's output disappeared"));
            };
            let result = result_type(output, &private)?;
            *output = result.transformed.clone();
            let Some(Expr::Async(inner)) = boxed_async_block_mut(&mut function.block) else {
                return Err(syn::Error::new(Span::call_site(), "internal error: the boxed async block disappeared"));
            };
            let (hoisted, rest) = split_async_trait_prologue(std::mem::take(&mut inner.block.stmts));
            let receiver = hoisted.iter().find_map(bound_self);
            let rest = Block { brace_token: inner.block.brace_token, stmts: rest };
            let body = async_body(&args, &private, &names, &result, &rest, receiver.as_ref());
            inner.block.stmts = parse_quote!(#(#hoisted)* #body);
        }
    }
    Ok(function.into_token_stream())
}

/// Checks the declared return type and builds [`ResultType`].
///
/// `Result<T, E>` is rewritten directly. Aliases are resolved through `FnResult`: `Result<T>`
/// (`io::Result<T>`, `anyhow::Result<T>`) takes its error type from the alias, and any other
/// name ending in `Result` (`ApiResult<T>`, `fmt::Result`) both types.
fn result_type(declared: &Type, private: &TokenStream) -> syn::Result<ResultType> {
    let not_result = || {
        syn::Error::new_spanned(
            declared,
            "`#[auto_forward]` requires a function returning `Result<T, E>` (or an alias named `..Result`)",
        )
    };
    let Type::Path(path) = ungroup(declared) else { return Err(not_result()) };
    if path.qself.is_some() {
        return Err(not_result());
    }
    let Some(last) = path.path.segments.last() else { return Err(not_result()) };
    let name = last.ident.to_string();
    if !name.ends_with("Result") {
        return Err(not_result());
    }
    let types: Vec<&Type> = match &last.arguments {
        PathArguments::AngleBracketed(generics) => generics
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        PathArguments::None => Vec::new(),
        PathArguments::Parenthesized(_) => return Err(not_result()),
    };
    let span = declared.span();
    let ok_of_alias = quote_spanned!(span=> <#declared as #private::FnResult>::Ok);
    let error_of_alias = quote_spanned!(span=> <#declared as #private::FnResult>::Err);
    let (ok, error, error_span) = match types.as_slice() {
        [ok, error] if name == "Result" => (quote!(#ok), quote!(#error), error.span()),
        [ok] if name == "Result" => (quote!(#ok), error_of_alias, span),
        _ => (ok_of_alias, error_of_alias, span),
    };
    let transformed: Type = syn::parse2(quote_spanned! {span=>
        ::core::result::Result<#private::Outcome<#ok>, #private::AutoForwardError<#error>>
    })?;
    let mut erased = declared.clone();
    EraseImplTrait.visit_type_mut(&mut erased);
    Ok(ResultType { erased, span, error_span, transformed })
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        other => other,
    }
}

/// `impl Trait` cannot be named in a `let`: `_` lets inference fill it in.
struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            *ty = Type::Infer(syn::TypeInfer { underscore_token: syn::Token![_](impl_trait.impl_token.span) });
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// Makes the body's type the declared one from the start, so type errors point at the
/// user's expressions ("return type inferred to be .. here"), as tracing-attributes does.
fn fake_return_edge(names: &Names, result: &ResultType) -> TokenStream {
    let fake = &names.fake;
    let erased = &result.erased;
    quote_spanned! {result.span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let #fake: #erased = loop {};
            return #fake;
        }
    }
}

/// The body of an `async fn` (or of `#[async_trait]`'s async block).
fn async_body(
    args: &Args,
    private: &TokenStream,
    names: &Names,
    result: &ResultType,
    block: &Block,
    receiver: Option<&syn::Ident>,
) -> TokenStream {
    let prologue = key_statement(args, names, receiver);
    let fake = fake_return_edge(names, result);
    let Names { error, request, .. } = names;
    let (client_statement, client) = client_expression(args, private, receiver);
    let run = quote!(async { #fake #block }.await);
    let failure = failure_arm(args, private, names, result, run, quote!((#error, #request)), receiver);
    // Everything up to the submission happens in a block that ends before the last
    // `.await`: its locals (the body's result, the error it lent to `forward_request`) are
    // then not kept in the future, which holds the body's future, then one `Box`.
    quote! {
        #prologue
        let (#error, #request) = {
            #failure
        };
        #client_statement
        #private::forward_async(#error, #client, #request).await
    }
}

/// The body of a sync `fn`: the body runs in a closure called at once (so `return` and `?`
/// keep their meaning), made `FnOnce` so it may hand out what it borrows.
fn sync_body(args: &Args, private: &TokenStream, names: &Names, result: &ResultType, block: &Block) -> TokenStream {
    let prologue = key_statement(args, names, None);
    let fake = fake_return_edge(names, result);
    let Names { result: result_name, error, request, token, .. } = names;
    let (client_statement, client) = client_expression(args, private, None);
    let forward = quote! {
        #client_statement
        #private::forward_sync(#error, #client, #request)
    };
    let failure = failure_arm(args, private, names, result, quote!(#result_name), forward, None);
    quote! {
        #prologue
        let #token = #private::FnOnceToken;
        #[allow(clippy::redundant_closure_call, clippy::result_large_err)]
        let #result_name = (|| {
            #token.consume();
            #fake
            #block
        })();
        #failure
    }
}

/// `let auto_forward_key = <idempotent_key>;`: evaluated before the body, so it may use
/// arguments the body consumes.
fn key_statement(args: &Args, names: &Names, receiver: Option<&syn::Ident>) -> TokenStream {
    let Some(key) = &args.idempotent_key else { return TokenStream::new() };
    let key = user_expression(key, receiver);
    let name = &names.key;
    quote!(let #name = #key;)
}

/// The client as `Result<&EZThrottle, Error>`: the user's expression (deref coercion turns
/// `&Arc<EZThrottle>`, `&&EZThrottle`, `&LazyLock<EZThrottle>` into `&EZThrottle`) or the
/// process-wide client from the environment.
///
/// Returns the statement that evaluates the expression (`let client = &(<expr>);`, so a
/// temporary such as `make_client()` lives until the end of the enclosing block, across the
/// submission's `.await`) and the expression to pass on.
fn client_expression(args: &Args, private: &TokenStream, receiver: Option<&syn::Ident>) -> (TokenStream, TokenStream) {
    match &args.client {
        Some(client) => {
            let span = client.span();
            let client = user_expression(client, receiver);
            let private = respan(private, span);
            let name = syn::Ident::new("auto_forward_client", Span::mixed_site().located_at(span));
            let statement = quote_spanned!(span=> let #name = &(#client););
            (statement, quote_spanned!(span=> #private::client(#name)))
        }
        None => (TokenStream::new(), quote!(#private::env_client())),
    }
}

/// The same tokens, located at `span` (still resolved where the macro was called), so a
/// compiler error about the expression they start points at user code.
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut located = Group::new(group.delimiter(), respan(&group.stream(), span));
                located.set_span(group.span().located_at(span));
                tree = TokenTree::Group(located);
            } else {
                tree.set_span(tree.span().located_at(span));
            }
            tree
        })
        .collect()
}

/// A user expression; inside `#[async_trait]`'s block, `self` is called `__self`.
fn user_expression(expr: &Expr, receiver: Option<&syn::Ident>) -> TokenStream {
    let tokens = expr.to_token_stream();
    match receiver {
        Some(receiver) => rename_self(tokens, receiver),
        None => tokens,
    }
}

/// Renames `self` (but not `self::path`) in a token stream, macro arguments included.
fn rename_self(tokens: TokenStream, receiver: &syn::Ident) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    for (index, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) if ident == "self" && !followed_by_path_separator(&trees, index) => {
                let mut renamed = receiver.clone();
                renamed.set_span(ident.span());
                out.push(TokenTree::Ident(renamed));
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename_self(group.stream(), receiver));
                renamed.set_span(group.span());
                out.push(TokenTree::Group(renamed));
            }
            other => out.push(other.clone()),
        }
    }
    out.into_iter().collect()
}

fn followed_by_path_separator(trees: &[TokenTree], index: usize) -> bool {
    matches!(
        (trees.get(index + 1), trees.get(index + 2)),
        (Some(TokenTree::Punct(first)), Some(TokenTree::Punct(second)))
            if first.as_char() == ':' && second.as_char() == ':'
    )
}

/// `Ok` returns at once; an error without a request is returned as is; else `forward`.
fn failure_arm(
    args: &Args,
    private: &TokenStream,
    names: &Names,
    result: &ResultType,
    run: TokenStream,
    forward: TokenStream,
    receiver: Option<&syn::Ident>,
) -> TokenStream {
    let Names { value, error, request, key, .. } = names;
    // Spanned at the error type: an error type that cannot be forwarded is reported there.
    let at_error = respan(private, result.error_span);
    let error_at = syn::Ident::new(&error.to_string(), error.span().located_at(result.error_span));
    let find_request = match &args.on_status {
        Some(codes) => quote_spanned!(result.error_span=> #at_error::http_forward_request(&#error_at, &[#(#codes),*])),
        None => quote_spanned!(result.error_span=> #at_error::forward_request(&#error_at)),
    };
    let step = args.step.map(|(kind, span)| {
        let variant = match kind {
            StepKind::Frugal => format_ident!("Frugal", span = span),
            StepKind::Performance => format_ident!("Performance", span = span),
        };
        quote!(let #request = #private::set_step(#request, #private::StepType::#variant);)
    });
    let key =
        args.idempotent_key.as_ref().map(|_| quote!(let #request = #private::set_idempotent_key(#request, #key);));
    let webhooks = args.webhooks.as_ref().map(|webhooks| {
        let webhooks = user_expression(webhooks, receiver);
        quote!(let #request = #private::add_webhooks(#request, #webhooks);)
    });
    // No `.await` while the body's result or error is in a local: on the `Ok` path the
    // future only ever holds the body's future, and on failure only a `Box`.
    quote! {
        let #error = match #run {
            ::core::result::Result::Ok(#value) => {
                return ::core::result::Result::Ok(#private::Outcome::Completed(#value));
            }
            ::core::result::Result::Err(#error) => #error,
        };
        let ::core::option::Option::Some(#request) = #find_request else {
            return #private::not_forwarded(#error);
        };
        #step
        #key
        #webhooks
        #forward
    }
}

/// The `Output` of `Pin<Box<dyn Future<Output = ..> ..>>`, if that is the return type.
fn boxed_async_output(output: &mut ReturnType) -> Option<&mut Type> {
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
fn boxed_async_block(block: &Block) -> Option<&syn::ExprAsync> {
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

fn boxed_async_block_mut(block: &mut Block) -> Option<&mut Expr> {
    let [Stmt::Expr(Expr::Call(call), None)] = block.stmts.as_mut_slice() else { return None };
    call.args.first_mut()
}

/// `#[async_trait]` opens its block with a fake return (`if let Some(__ret) = None::<R>`),
/// then rebinds the arguments (`let __self = self; let x = x;`), then runs the body. The
/// rebinding moves the arguments into the block; it is hoisted out of the part we wrap, so
/// `client`, `webhooks` and `idempotent_key` can still use them after the body ran.
fn split_async_trait_prologue(stmts: Vec<Stmt>) -> (Vec<Stmt>, Vec<Stmt>) {
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
fn bound_self(stmt: &Stmt) -> Option<syn::Ident> {
    let Stmt::Local(local) = stmt else { return None };
    let Pat::Ident(binding) = &local.pat else { return None };
    let init = local.init.as_ref()?;
    let Expr::Path(path) = &*init.expr else { return None };
    path.path.is_ident("self").then(|| binding.ident.clone())
}
