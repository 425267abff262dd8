//! The `#[test]` attribute of `reliability-harness`.
//!
//! It leaves the function as written and registers it (once, or once per `#[case]`) with the
//! harness through `inventory`, so that there is no central list of tests to maintain. All the
//! logic lives in the harness crate; this crate only turns syntax into a static `TestDef`.
//!
//! ```ignore
//! #[reliability_harness::test(e2e, slow)]
//! #[case(100)]
//! #[case(id = "huge", 100_000, markers(chaos))]
//! async fn delivers(spans: usize) -> anyhow::Result<()> { /* ... */ }
//! ```

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Pat, Token};

/// Makes a function a reliability test. Arguments: markers as bare identifiers
/// (`#[test(e2e, slow)]`). Parametrize with `#[case(args...)]` attributes below it; a case may
/// carry `id = "..."` and `markers(...)` of its own.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(args as TestArgs);
    let item = syn::parse_macro_input!(item as ItemFn);
    match expand(args, item) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// `e2e, slow` — markers. Settings (`key = value`) are reserved for the runner.
struct TestArgs {
    markers: Vec<Ident>,
}

impl Parse for TestArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut markers = Vec::new();
        while !input.is_empty() {
            let ident: Ident = input.call(Ident::parse_any)?;
            if input.peek(Token![=]) {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("unknown setting `{ident}`; markers are written bare, e.g. `#[test(e2e, slow)]`"),
                ));
            }
            markers.push(ident);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(TestArgs { markers })
    }
}

/// One `#[case(...)]`: positional arguments plus optional `id = "..."` and `markers(...)`.
struct Case {
    id: Option<LitStr>,
    markers: Vec<Ident>,
    args: Vec<Expr>,
    span: Span,
}

impl Case {
    fn from_attr(attr: &Attribute) -> syn::Result<Case> {
        let span = attr.pound_token.span;
        let items = attr.parse_args_with(Punctuated::<CaseItem, Token![,]>::parse_terminated)?;
        let mut case = Case { id: None, markers: Vec::new(), args: Vec::new(), span };
        for item in items {
            match item {
                CaseItem::Id(id) if case.id.is_none() => case.id = Some(id),
                CaseItem::Id(id) => return Err(syn::Error::new(id.span(), "`id` given twice")),
                CaseItem::Markers(markers) => case.markers.extend(markers),
                CaseItem::Arg(expr) => case.args.push(expr),
            }
        }
        Ok(case)
    }
}

enum CaseItem {
    Id(LitStr),
    Markers(Vec<Ident>),
    Arg(Expr),
}

impl Parse for CaseItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let fork = input.fork();
        if let Ok(ident) = fork.parse::<Ident>() {
            if ident == "id" && fork.peek(Token![=]) {
                input.parse::<Ident>()?;
                input.parse::<Token![=]>()?;
                return Ok(CaseItem::Id(input.parse()?));
            }
            if ident == "markers" && fork.peek(syn::token::Paren) {
                input.parse::<Ident>()?;
                let content;
                syn::parenthesized!(content in input);
                let markers = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
                return Ok(CaseItem::Markers(markers.into_iter().collect()));
            }
        }
        Ok(CaseItem::Arg(input.parse()?))
    }
}

/// pytest's id for a value: literals print as themselves, anything else as `<param><index>`.
fn value_id(expr: &Expr, param: &str, index: usize) -> String {
    let lit = match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => {
                return match lit {
                    Lit::Int(i) => format!("-{}", i.base10_digits()),
                    Lit::Float(f) => format!("-{}", f.base10_digits()),
                    _ => format!("{param}{index}"),
                };
            }
            _ => None,
        },
        _ => None,
    };
    match lit {
        Some(Lit::Int(i)) => i.base10_digits().to_string(),
        Some(Lit::Float(f)) => f.base10_digits().to_string(),
        Some(Lit::Bool(b)) => b.value.to_string(),
        Some(Lit::Str(s)) => s.value(),
        Some(Lit::Char(c)) => c.value().to_string(),
        _ => format!("{param}{index}"),
    }
}

fn expand(args: TestArgs, mut item: ItemFn) -> syn::Result<TokenStream2> {
    let mut cases = Vec::new();
    let mut kept = Vec::new();
    for attr in item.attrs.drain(..) {
        if attr.path().is_ident("case") {
            cases.push(Case::from_attr(&attr)?);
        } else {
            kept.push(attr);
        }
    }
    item.attrs = kept;

    let params: Vec<String> = item
        .sig
        .inputs
        .iter()
        .map(|arg| match arg {
            FnArg::Typed(pat) => match &*pat.pat {
                Pat::Ident(ident) => Ok(ident.ident.to_string()),
                _ => Ok("arg".to_string()),
            },
            FnArg::Receiver(r) => Err(syn::Error::new_spanned(r, "a test cannot take `self`")),
        })
        .collect::<syn::Result<_>>()?;
    if cases.is_empty() && !params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.sig.inputs,
            "a test with parameters needs `#[case(...)]` attributes giving their values",
        ));
    }
    if let Some(generics) = item.sig.generics.lt_token {
        return Err(syn::Error::new(generics.span, "a test cannot be generic"));
    }

    let fn_name = &item.sig.ident;
    let fn_name_str = fn_name.to_string();
    let is_async = item.sig.asyncness.is_some();
    let markers: Vec<String> = args.markers.iter().map(|m| m.to_string()).collect();

    let mut registrations = Vec::new();
    let mut seen_ids: Vec<String> = Vec::new();
    let plain = Case { id: None, markers: Vec::new(), args: Vec::new(), span: Span::call_site() };
    let all_cases: Vec<(Option<usize>, &Case)> = if cases.is_empty() {
        vec![(None, &plain)]
    } else {
        cases.iter().enumerate().map(|(i, c)| (Some(i), c)).collect()
    };
    for (index, case) in all_cases {
        if case.args.len() != params.len() {
            return Err(syn::Error::new(
                case.span,
                format!("this case gives {} argument(s) but `{fn_name_str}` takes {}", case.args.len(), params.len()),
            ));
        }
        let case_id = index.map(|i| match &case.id {
            Some(id) => id.value(),
            None => {
                case.args.iter().zip(&params).map(|(arg, param)| value_id(arg, param, i)).collect::<Vec<_>>().join("-")
            }
        });
        if let Some(id) = &case_id {
            if seen_ids.contains(id) {
                return Err(syn::Error::new(
                    case.span,
                    format!("two cases of `{fn_name_str}` have the id `{id}`; give one `id = \"...\"`"),
                ));
            }
            seen_ids.push(id.clone());
        }
        let case_id_tokens = match &case_id {
            Some(id) => quote!(::core::option::Option::Some(#id)),
            None => quote!(::core::option::Option::None),
        };
        let mut all_markers = markers.clone();
        all_markers.extend(case.markers.iter().map(|m| m.to_string()));
        let call_args = &case.args;
        let call = if is_async {
            quote!(::reliability_harness::__private::block_on(#fn_name(#(#call_args),*)))
        } else {
            quote!(#fn_name(#(#call_args),*))
        };
        let runner = format_ident!("__reliability_run_{}", index.unwrap_or(0));
        registrations.push(quote! {
            fn #runner() -> ::core::result::Result<(), ::std::string::String> {
                ::reliability_harness::__private::TestOutput::into_result(#call)
            }
            ::reliability_harness::__private::inventory::submit! {
                ::reliability_harness::__private::TestDef {
                    module_path: ::core::module_path!(),
                    function: #fn_name_str,
                    case: #case_id_tokens,
                    markers: &[#(#all_markers),*],
                    file: ::core::file!(),
                    line: ::core::line!(),
                    run: #runner,
                }
            }
        });
    }

    Ok(quote! {
        #item
        const _: () = {
            #(#registrations)*
        };
    })
}
