//! The arguments of `#[auto_forward(..)]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, LitInt, LitStr, Path, Token};

/// Every option, in the order the error messages list them.
const OPTIONS: &[&str] = &["client", "step", "idempotent_key", "webhooks", "on_status", "crate"];

/// `step = ..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    Frugal,
    Performance,
}

/// The parsed arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// `client = <expr>`: the client, or a reference to it.
    pub(crate) client: Option<Expr>,
    /// `step = frugal|performance`.
    pub(crate) step: Option<(StepKind, Span)>,
    /// `idempotent_key = <expr>`.
    pub(crate) idempotent_key: Option<Expr>,
    /// `webhooks = <expr>`.
    pub(crate) webhooks: Option<Expr>,
    /// `on_status = [..]`.
    pub(crate) on_status: Option<Vec<LitInt>>,
    /// `crate = "path"`.
    pub(crate) krate: Option<Path>,
}

impl Args {
    /// Parses `key = value, ...`.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Self> {
        (|input: ParseStream<'_>| Self::parse_inner(input)).parse2(tokens)
    }

    fn parse_inner(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Self::default();
        while !input.is_empty() {
            let key: Ident = if input.peek(Token![crate]) {
                let token: Token![crate] = input.parse()?;
                Ident::new("crate", token.span)
            } else {
                input.parse().map_err(|error| syn::Error::new(error.span(), expected_option()))?
            };
            let name = key.to_string();
            if !OPTIONS.contains(&name.as_str()) {
                return Err(syn::Error::new(key.span(), format!("unknown option `{name}`; {}", expected_option())));
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(key.span(), format!("expected `{name} = ...`")));
            }
            input.parse::<Token![=]>()?;
            let duplicate = || syn::Error::new(key.span(), format!("`{name}` set multiple times"));
            match name.as_str() {
                "client" => set(&mut args.client, input.parse()?, duplicate)?,
                "idempotent_key" => set(&mut args.idempotent_key, input.parse()?, duplicate)?,
                "webhooks" => set(&mut args.webhooks, input.parse()?, duplicate)?,
                "step" => set(&mut args.step, parse_step(input)?, duplicate)?,
                "on_status" => set(&mut args.on_status, parse_statuses(input)?, duplicate)?,
                _ => set(&mut args.krate, parse_crate(input)?, duplicate)?,
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn expected_option() -> String {
    let list: Vec<String> = OPTIONS.iter().map(|option| format!("`{option}`")).collect();
    format!("expected one of: {}", list.join(", "))
}

fn set<T>(slot: &mut Option<T>, value: T, duplicate: impl FnOnce() -> syn::Error) -> syn::Result<()> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_step(input: ParseStream<'_>) -> syn::Result<(StepKind, Span)> {
    let value: Ident =
        input.parse().map_err(|error| syn::Error::new(error.span(), "expected `frugal` or `performance`"))?;
    match value.to_string().as_str() {
        "frugal" => Ok((StepKind::Frugal, value.span())),
        "performance" => Ok((StepKind::Performance, value.span())),
        other => Err(syn::Error::new(
            value.span(),
            format!("unknown step type `{other}`; expected `frugal` or `performance`"),
        )),
    }
}

fn parse_statuses(input: ParseStream<'_>) -> syn::Result<Vec<LitInt>> {
    let content;
    let brackets = syn::bracketed!(content in input);
    let codes = content.parse_terminated(|item: ParseStream<'_>| item.parse::<LitInt>(), Token![,])?;
    if codes.is_empty() {
        return Err(syn::Error::new(
            brackets.span.join(),
            "`on_status` needs at least one HTTP status, e.g. `[429, 503]`",
        ));
    }
    for code in &codes {
        let valid =
            code.suffix().is_empty() && code.base10_parse::<u16>().is_ok_and(|code| (100..=599).contains(&code));
        if !valid {
            return Err(syn::Error::new(code.span(), "expected an HTTP status between 100 and 599"));
        }
    }
    Ok(codes.into_iter().collect())
}

fn parse_crate(input: ParseStream<'_>) -> syn::Result<Path> {
    let literal: LitStr = input
        .parse()
        .map_err(|error| syn::Error::new(error.span(), "expected a path in a string, e.g. `crate = \"ezthrottle\"`"))?;
    literal.parse_with(Path::parse_mod_style).map_err(|_| {
        syn::Error::new(literal.span(), format!("`{}` is not a path, e.g. `crate = \"ezthrottle\"`", literal.value()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn error(tokens: TokenStream) -> String {
        match Args::parse(tokens) {
            Ok(_) => String::from("parsed"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_option_parses() {
        let args = Args::parse(quote!(
            client = &CLIENT,
            step = frugal,
            idempotent_key = format!("k-{id}"),
            webhooks = [Webhook::new("https://a.example/hook")],
            on_status = [429, 503],
            crate = "ezthrottle_core",
        ))
        .unwrap();
        assert!(args.client.is_some() && args.idempotent_key.is_some() && args.webhooks.is_some());
        assert_eq!(args.step.map(|(kind, _)| kind), Some(StepKind::Frugal));
        assert_eq!(args.on_status.as_ref().map(Vec::len), Some(2));
        assert!(args.krate.as_ref().is_some_and(|path| path.is_ident("ezthrottle_core")));
    }

    #[test]
    fn empty_arguments_are_fine() {
        assert_eq!(error(quote!()), "parsed");
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            error(quote!(clinet = x)),
            "unknown option `clinet`; expected one of: `client`, `step`, `idempotent_key`, `webhooks`, `on_status`, `crate`"
        );
        assert_eq!(error(quote!(client = a, client = b)), "`client` set multiple times");
        assert_eq!(error(quote!(step = lazy)), "unknown step type `lazy`; expected `frugal` or `performance`");
        assert_eq!(error(quote!(on_status = [])), "`on_status` needs at least one HTTP status, e.g. `[429, 503]`");
        assert_eq!(error(quote!(on_status = [42])), "expected an HTTP status between 100 and 599");
        assert_eq!(error(quote!(crate = ezthrottle)), "expected a path in a string, e.g. `crate = \"ezthrottle\"`");
        assert_eq!(error(quote!(client)), "expected `client = ...`");
    }
}
