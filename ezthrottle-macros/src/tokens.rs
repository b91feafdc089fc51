//! Token rewriting for user expressions: spans that point at user code, and `self` renamed
//! where `#[async_trait]` rebinds it.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Expr;

/// The same tokens, located at `span` (still resolved where the macro was called), so a
/// compiler error about the expression they start points at user code.
pub(crate) fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
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
pub(crate) fn user_expression(expr: &Expr, receiver: Option<&syn::Ident>) -> TokenStream {
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
