//! The `#[test]` attribute of `reliability-harness`.
//!
//! It leaves the function as written and registers it (once, or once per `#[case]`) with the
//! harness through `linkme` (a static the linker gathers into one slice), so that there is no
//! central list of tests to maintain. All the logic lives in the harness crate; this crate only
//! turns syntax into a static `TestDef`.
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
use syn::{Attribute, Expr, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Pat, Token, Type};

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

/// `e2e, slow, timeout = 30, xfail = "reason", skip_if(cond, "reason")`: bare identifiers are
/// markers; `key = value` and `key(...)` are settings.
struct TestArgs {
    markers: Vec<Ident>,
    settings: Vec<(Ident, SettingValue)>,
}

enum SettingValue {
    Value(Expr),
    Call(Punctuated<Expr, Token![,]>),
}

const SETTINGS: &str = "timeout, retries, serial, threads, isolation, memory_limit_mb, xfail, xfail_strict, skip_if(condition, \"reason\")";

impl Parse for TestArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = TestArgs { markers: Vec::new(), settings: Vec::new() };
        while !input.is_empty() {
            let ident: Ident = input.call(Ident::parse_any)?;
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                args.settings.push((ident, SettingValue::Value(input.parse()?)));
            } else if input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in input);
                args.settings.push((ident, SettingValue::Call(Punctuated::parse_terminated(&content)?)));
            } else {
                args.markers.push(ident);
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

fn lit_str(value: &Expr, what: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(other, format!("{what} takes a string literal"))),
    }
}

/// The `Option<&Settings>` expression for the attribute's settings: `None` when it has none,
/// so a plain test's static carries 8 bytes of settings, not a whole `Settings`.
fn settings_tokens(settings: &[(Ident, SettingValue)]) -> syn::Result<TokenStream2> {
    let p = quote!(::reliability_harness::__private);
    let mut fields = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in settings {
        let name = key.to_string();
        let field = if name == "xfail_strict" { "xfail".to_string() } else { name.clone() };
        if seen.contains(&field) {
            return Err(syn::Error::new(key.span(), format!("`{field}` is set twice")));
        }
        seen.push(field);
        let tokens = match (name.as_str(), value) {
            ("timeout", SettingValue::Value(v)) => quote!(timeout: ::core::option::Option::Some((#v) as f64)),
            ("retries", SettingValue::Value(v)) => quote!(retries: ::core::option::Option::Some(#v)),
            ("serial", SettingValue::Value(v)) => quote!(serial: ::core::option::Option::Some(#v)),
            ("threads", SettingValue::Value(v)) => quote!(threads: ::core::option::Option::Some(#v)),
            ("memory_limit_mb", SettingValue::Value(v)) => quote!(memory_limit_mb: ::core::option::Option::Some(#v)),
            ("isolation", SettingValue::Value(v)) => {
                let s = lit_str(v, "isolation")?;
                let variant = match s.value().as_str() {
                    "process" => quote!(Process),
                    "thread" => quote!(Thread),
                    other => {
                        return Err(syn::Error::new(
                            s.span(),
                            format!("unknown isolation `{other}`; valid: \"process\", \"thread\""),
                        ));
                    }
                };
                quote!(isolation: ::core::option::Option::Some(#p::Isolation::#variant))
            }
            ("xfail" | "xfail_strict", SettingValue::Value(v)) => {
                let reason = lit_str(v, &name)?;
                let strict = name == "xfail_strict";
                quote!(xfail: ::core::option::Option::Some(#p::Xfail { reason: #reason, strict: #strict }))
            }
            ("skip_if", SettingValue::Call(args)) if args.len() == 2 => {
                let condition = &args[0];
                let reason = lit_str(&args[1], "skip_if's reason")?;
                quote!(skip_if: ::core::option::Option::Some(#p::SkipIf {
                    condition: { fn condition() -> bool { #condition } condition },
                    reason: #reason,
                }))
            }
            ("skip_if", _) => {
                return Err(syn::Error::new(key.span(), "write `skip_if(condition, \"reason\")`"));
            }
            _ => {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown setting `{name}`; valid settings: {SETTINGS}"),
                ));
            }
        };
        fields.push(tokens);
    }
    if fields.is_empty() {
        return Ok(quote!(::core::option::Option::None));
    }
    Ok(quote!(::core::option::Option::Some(&#p::Settings { #(#fields,)* ..#p::Settings::DEFAULT })))
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

enum Param {
    Fixture(Type),
    Value(String),
}

fn is_fixture_type(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => !path.path.is_ident("str"),
        _ => false,
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

    // Parameters taken by reference (`&T`, T not `str` or a slice) are fixtures; the others
    // are case values.
    let mut params: Vec<Param> = Vec::new();
    for arg in &item.sig.inputs {
        let FnArg::Typed(pat) = arg else {
            return Err(syn::Error::new_spanned(arg, "a test cannot take `self`"));
        };
        let name = match &*pat.pat {
            Pat::Ident(ident) => ident.ident.to_string(),
            _ => "arg".to_string(),
        };
        params.push(match &*pat.ty {
            Type::Reference(r) if r.mutability.is_none() && is_fixture_type(&r.elem) => {
                Param::Fixture((*r.elem).clone())
            }
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(syn::Error::new_spanned(r, "fixtures are shared: take them as `&T`, not `&mut T`"));
            }
            _ => Param::Value(name),
        });
    }
    let value_params: Vec<&String> =
        params.iter().filter_map(|p| if let Param::Value(n) = p { Some(n) } else { None }).collect();
    if cases.is_empty() && !value_params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.sig.inputs,
            "a test with value parameters needs `#[case(...)]` attributes giving them (fixtures are taken as `&T`)",
        ));
    }
    if let Some(generics) = item.sig.generics.lt_token {
        return Err(syn::Error::new(generics.span, "a test cannot be generic"));
    }
    let settings = settings_tokens(&args.settings)?;
    let fixture_types: Vec<&Type> =
        params.iter().filter_map(|p| if let Param::Fixture(t) = p { Some(t) } else { None }).collect();

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
        if case.args.len() != value_params.len() {
            return Err(syn::Error::new(
                case.span,
                format!(
                    "this case gives {} argument(s) but `{fn_name_str}` takes {} value parameter(s)",
                    case.args.len(),
                    value_params.len()
                ),
            ));
        }
        let case_id = index.map(|i| match &case.id {
            Some(id) => id.value(),
            None => case
                .args
                .iter()
                .zip(&value_params)
                .map(|(arg, param)| value_id(arg, param, i))
                .collect::<Vec<_>>()
                .join("-"),
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
        let name_tail = match &case_id {
            Some(id) => format!("{fn_name_str}[{id}]"),
            None => fn_name_str.clone(),
        };
        let mut all_markers = markers.clone();
        all_markers.extend(case.markers.iter().map(|m| m.to_string()));
        let mut values = case.args.iter();
        let mut fixture_index = 0usize;
        let call_args: Vec<TokenStream2> = params
            .iter()
            .map(|param| match param {
                Param::Value(_) => {
                    let value = values.next();
                    quote!(#value)
                }
                Param::Fixture(_) => {
                    let var = format_ident!("__fixture_{}", fixture_index);
                    fixture_index += 1;
                    quote!(&*#var)
                }
            })
            .collect();
        let fixture_vars: Vec<Ident> = (0..fixture_types.len()).map(|i| format_ident!("__fixture_{}", i)).collect();
        let call = if is_async {
            quote!(::reliability_harness::__private::block_on(#fn_name(#(#call_args),*)))
        } else {
            quote!(#fn_name(#(#call_args),*))
        };
        let p = quote!(::reliability_harness::__private);
        // A body without fixtures captures nothing and goes as a plain `fn` (no code per test
        // beyond the body itself); one with fixtures borrows them and goes as a closure.
        let body = if fixture_types.is_empty() {
            quote!(__call.call_fn(|| #p::TestOutput::into_result(#call)))
        } else {
            quote! {
                #(let #fixture_vars = __call.fixture::<#fixture_types>()?;)*
                __call.call(|| #p::TestOutput::into_result(#call))
            }
        };
        let runner = format_ident!("__reliability_run_{}", index.unwrap_or(0));
        let def = format_ident!("__RELIABILITY_TEST_{}", index.unwrap_or(0));
        registrations.push(quote! {
            fn #runner(__call: &mut #p::TestCall<'_>) -> ::core::result::Result<(), #p::Interrupted> {
                #body
            }
            #[#p::linkme::distributed_slice(#p::TESTS)]
            #[linkme(crate = #p::linkme)]
            static #def: #p::TestDef = #p::TestDef {
                path: ::core::concat!(::core::module_path!(), "::", #name_tail),
                markers: &[#(#all_markers),*],
                file: ::core::file!(),
                package_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                line: ::core::line!(),
                settings: #settings,
                fixtures: &[#(#p::FixtureRef::of::<#fixture_types>()),*],
                run: #runner,
            };
        });
    }

    Ok(quote! {
        #item
        const _: () = {
            #(#registrations)*
        };
    })
}
