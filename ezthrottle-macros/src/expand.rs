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
//!     let request = match __private::forward_request(&error) {  // or http_forward_request
//!         __private::Verdict::Forward(request) => request,
//!         // Err(AutoForwardError::Failed(error)), or NotForwardable { original, reason }
//!         verdict => return __private::not_forwarded(error, verdict),
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

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, GenericArgument, ItemFn, PathArguments, ReturnType, Type, parse_quote};

use crate::async_trait::{
    bound_self, boxed_async_block, boxed_async_block_mut, boxed_async_output, split_async_trait_prologue,
};
use crate::attr::{Args, StepKind};
use crate::tokens::{respan, user_expression};

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
    verdict: syn::Ident,
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
            verdict: name("auto_forward_verdict"),
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
    let Names { value, error, request, key, verdict, .. } = names;
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
        let #request = match #find_request {
            #private::Verdict::Forward(#request) => #request,
            #verdict => return #private::not_forwarded(#error, #verdict),
        };
        #step
        #key
        #webhooks
        #forward
    }
}
