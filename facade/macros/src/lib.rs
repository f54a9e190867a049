//! The macros of `facade`, re-exported there: `#[facade::main]`, `#[facade::test]`, and the
//! expansions behind `facade::select!`, `facade::join!` and `facade::try_join!` (which facade
//! wraps so that they name the facade crate however it was renamed). Use them through facade.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Lit, MetaNameValue, Pat, Token};

/// The largest `worker_threads` (facade's `MAX_WORKER_THREADS`).
const MAX_WORKER_THREADS: u64 = 1024;

/// Runs `async fn main` on a runtime of facade. Arguments: `scheduler = "fifo" | "worksteal" |
/// "priority" | a registered name`, `worker_threads = N` (0: current-thread). The environment
/// variables `RUNTIME_SCHEDULER` and `RUNTIME_WORKER_THREADS`, when set, override them.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args, item, Kind::Main).unwrap_or_else(|e| {
        // A `main` too, so that the error above is the only one reported.
        let e = e.to_compile_error();
        quote!(#e fn main() {}).into()
    })
}

/// Runs an `async fn` test on a fresh runtime of facade (current-thread unless
/// `worker_threads` says otherwise). Arguments as `#[facade::main]`, plus `start_paused = true`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args, item, Kind::Test).unwrap_or_else(|e| e.to_compile_error().into())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "facade::main",
            Kind::Test => "facade::test",
        }
    }
}

fn entry(args: TokenStream, item: TokenStream, kind: Kind) -> syn::Result<TokenStream> {
    let args = syn::parse::Parser::parse(
        Punctuated::<MetaNameValue, Token![,]>::parse_terminated,
        args,
    )?;
    let mut scheduler = quote!(::core::option::Option::None);
    let mut threads = match kind {
        Kind::Main => quote!(::core::option::Option::None),
        Kind::Test => quote!(::core::option::Option::Some(0usize)),
    };
    let mut paused = false;
    let mut seen = Vec::new();
    for arg in &args {
        let Some(name) = arg.path.get_ident().map(|i| i.to_string()) else {
            return Err(syn::Error::new(arg.path.span(), unknown(kind)));
        };
        if seen.contains(&name) {
            return Err(syn::Error::new(
                arg.path.span(),
                format!("`{name}` is given twice"),
            ));
        }
        seen.push(name.clone());
        let lit = match &arg.value {
            Expr::Lit(l) => &l.lit,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("`{name}` takes a literal"),
                ));
            }
        };
        match (name.as_str(), lit) {
            ("scheduler", Lit::Str(s)) => {
                let v = s.value();
                if v.trim().is_empty() {
                    return Err(syn::Error::new(
                        s.span(),
                        "`scheduler` names a scheduler: \"fifo\", \"worksteal\", \"priority\" or \
                         a name given to facade::scheduler::register_scheduler",
                    ));
                }
                scheduler = quote!(::core::option::Option::Some(#v));
            }
            ("scheduler", other) => {
                return Err(syn::Error::new(
                    other.span(),
                    "`scheduler` is a string: \"fifo\", \"worksteal\", \"priority\" or a \
                     registered name",
                ));
            }
            ("worker_threads", Lit::Int(n)) => {
                let v = n
                    .base10_parse::<u64>()
                    .ok()
                    .filter(|&v| v <= MAX_WORKER_THREADS);
                let Some(v) = v else {
                    return Err(syn::Error::new(
                        n.span(),
                        format!(
                            "`worker_threads` is a whole number from 0 to {MAX_WORKER_THREADS} \
                             (0: run on the thread that calls main)"
                        ),
                    ));
                };
                let v = v as usize;
                threads = quote!(::core::option::Option::Some(#v));
            }
            ("worker_threads", other) => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("`worker_threads` is a whole number from 0 to {MAX_WORKER_THREADS}"),
                ));
            }
            ("start_paused", Lit::Bool(b)) if kind == Kind::Test => paused = b.value,
            ("start_paused", other) if kind == Kind::Test => {
                return Err(syn::Error::new(
                    other.span(),
                    "`start_paused` is `true` or `false`",
                ));
            }
            ("start_paused", _) => {
                return Err(syn::Error::new(
                    arg.path.span(),
                    "`start_paused` is for #[facade::test] (a paused clock in a program's main \
                     would never move on its own)",
                ));
            }
            _ => return Err(syn::Error::new(arg.path.span(), unknown(kind))),
        }
    }
    let mut f: ItemFn = syn::parse(item)?;
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            f.sig.fn_token.span(),
            format!("#[{}] goes on an `async fn`", kind.name()),
        ));
    }
    if !f.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            f.sig.inputs.span(),
            format!("the function of #[{}] takes no arguments", kind.name()),
        ));
    }
    if kind == Kind::Main && f.sig.ident != "main" {
        return Err(syn::Error::new(
            f.sig.ident.span(),
            "#[facade::main] goes on `async fn main`",
        ));
    }
    f.sig.asyncness = None;
    let body = &f.block;
    let which = kind.name();
    let ret = match &f.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, t) => quote!(#t),
    };
    let new_body: syn::Block = syn::parse_quote!({
        let body = async move #body;
        ::facade::__private::entry_runtime(#which, #scheduler, #threads, #paused)
            .block_on::<_, #ret>(body)
    });
    *f.block = new_body;
    let attrs = match kind {
        Kind::Main => quote!(),
        Kind::Test => quote!(#[::core::prelude::v1::test]),
    };
    Ok(quote!(#attrs #f).into())
}

fn unknown(kind: Kind) -> String {
    match kind {
        Kind::Main => "unknown argument: #[facade::main] takes `scheduler = \"...\"` and \
                       `worker_threads = N`"
            .into(),
        Kind::Test => "unknown argument: #[facade::test] takes `scheduler = \"...\"`, \
                       `worker_threads = N` and `start_paused = true`"
            .into(),
    }
}

/// `select!`'s input after facade's wrapper: `(crate path) biased; branches`.
struct Select {
    krate: Tokens,
    biased: bool,
    branches: Vec<Branch>,
    otherwise: Option<Expr>,
}

struct Branch {
    pat: Pat,
    fut: Expr,
    cond: Option<Expr>,
    handler: Expr,
}

fn parse_krate(input: ParseStream<'_>) -> syn::Result<Tokens> {
    let content;
    syn::parenthesized!(content in input);
    content.parse()
}

/// A handler: an expression, then a comma unless it is a block or the last branch. A handler
/// that starts with `{` is that block alone, as in tokio (so a next branch whose pattern starts
/// with `(` is not read as a call of the block).
fn parse_handler(input: ParseStream<'_>) -> syn::Result<Expr> {
    let is_block = input.peek(syn::token::Brace);
    let handler: Expr = if is_block {
        Expr::Block(input.parse()?)
    } else {
        input.parse()?
    };
    if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
    } else if !is_block && !input.is_empty() {
        return Err(input.error("expected `,` after this branch's expression"));
    }
    Ok(handler)
}

impl Parse for Select {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_krate(input)?;
        let mut biased = false;
        if input.peek(syn::Ident) && input.peek2(Token![;]) {
            let id: syn::Ident = input.parse()?;
            if id != "biased" {
                return Err(syn::Error::new(id.span(), "expected `biased;` or a branch"));
            }
            input.parse::<Token![;]>()?;
            biased = true;
        }
        let mut branches = Vec::new();
        let mut otherwise = None;
        while !input.is_empty() {
            if input.peek(Token![else]) {
                let e: Token![else] = input.parse()?;
                if otherwise.is_some() {
                    return Err(syn::Error::new(e.span, "select! has one `else` branch"));
                }
                input.parse::<Token![=>]>()?;
                otherwise = Some(parse_handler(input)?);
                continue;
            }
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            input.parse::<Token![=]>()?;
            let fut: Expr = input.parse()?;
            let mut cond = None;
            if input.peek(Token![,]) && input.peek2(Token![if]) {
                input.parse::<Token![,]>()?;
                input.parse::<Token![if]>()?;
                cond = Some(input.parse()?);
            }
            input.parse::<Token![=>]>()?;
            let handler = parse_handler(input)?;
            branches.push(Branch {
                pat,
                fut,
                cond,
                handler,
            });
        }
        if branches.is_empty() {
            return Err(input.error("select! needs at least one `pattern = future => handler`"));
        }
        if branches.len() > 64 {
            return Err(input.error("select! takes at most 64 branches"));
        }
        Ok(Select {
            krate,
            biased,
            branches,
            otherwise,
        })
    }
}

/// A pattern usable against a reference to the output (to test it without moving it): `ref`
/// and `mut` on bindings removed (the bindings then borrow).
fn by_ref(pat: &Pat) -> Pat {
    let mut p = pat.clone();
    strip(&mut p);
    p
}

fn strip(p: &mut Pat) {
    match p {
        Pat::Ident(i) => {
            i.by_ref = None;
            i.mutability = None;
            if let Some((_, sub)) = &mut i.subpat {
                strip(sub);
            }
        }
        Pat::Or(o) => o.cases.iter_mut().for_each(strip),
        Pat::Paren(x) => strip(&mut x.pat),
        Pat::Reference(x) => strip(&mut x.pat),
        Pat::Slice(x) => x.elems.iter_mut().for_each(strip),
        Pat::Struct(x) => x.fields.iter_mut().for_each(|f| strip(&mut f.pat)),
        Pat::Tuple(x) => x.elems.iter_mut().for_each(strip),
        Pat::TupleStruct(x) => x.elems.iter_mut().for_each(strip),
        Pat::Type(x) => strip(&mut x.pat),
        _ => {}
    }
}

/// The expansion of `facade::select!` (called by facade's wrapper; see facade's docs).
#[doc(hidden)]
#[proc_macro]
pub fn select_impl(input: TokenStream) -> TokenStream {
    let s = syn::parse_macro_input!(input as Select);
    let krate = &s.krate;
    let n = s.branches.len();
    let site = Span::mixed_site();
    let out_ty = syn::Ident::new("__Out", site);
    let disabled = syn::Ident::new("__disabled", site);
    let cx = syn::Ident::new("__cx", site);
    let futs: Vec<_> = (0..n)
        .map(|i| format_ident!("__f{}", i, span = site))
        .collect();
    let conds: Vec<_> = (0..n)
        .map(|i| format_ident!("__c{}", i, span = site))
        .collect();
    let vars: Vec<_> = (0..n).map(|i| format_ident!("_{}", i)).collect();
    let tys: Vec<_> = (0..n).map(|i| format_ident!("T{}", i)).collect();
    let cond_exprs = s.branches.iter().map(|b| match &b.cond {
        Some(c) => quote!(#c),
        None => quote!(true),
    });
    let fut_exprs = s.branches.iter().map(|b| &b.fut);
    let disable = conds.iter().enumerate().map(|(i, c)| {
        let bit = 1u64 << i;
        quote_spanned!(site=> if !#c { #disabled |= #bit; })
    });
    let arms = s.branches.iter().enumerate().map(|(i, b)| {
        let f = &futs[i];
        let v = &vars[i];
        let check = by_ref(&b.pat);
        let bit = 1u64 << i;
        quote_spanned! {site=>
            #i => {
                if #disabled & #bit != 0 {
                    continue;
                }
                let out = match ::core::future::Future::poll(#f.as_mut(), #cx) {
                    ::core::task::Poll::Ready(out) => out,
                    ::core::task::Poll::Pending => {
                        pending = true;
                        continue;
                    }
                };
                #disabled |= #bit;
                #[allow(unused_variables, clippy::redundant_pattern_matching)]
                let matched = match &out {
                    #check => true,
                    #[allow(unreachable_patterns)]
                    _ => false,
                };
                if !matched {
                    continue;
                }
                return ::core::task::Poll::Ready(#out_ty::#v(out));
            }
        }
    });
    let handlers = s.branches.iter().enumerate().map(|(i, b)| {
        let v = &vars[i];
        let pat = &b.pat;
        let h = &b.handler;
        quote!(#out_ty::#v(#pat) => #h,)
    });
    let otherwise = match &s.otherwise {
        Some(e) => quote!(#e),
        None => quote!(::core::panic!(
            "all branches of select! are disabled (their futures finished or their patterns did \
             not match, or their `if` was false) and there is no `else` branch"
        )),
    };
    let start = if s.biased {
        quote!(0usize)
    } else {
        quote!(#krate::__private::random_below(#n))
    };
    quote_spanned! {site=> {
        #[allow(non_camel_case_types, clippy::enum_variant_names)]
        enum #out_ty<#(#tys),*> { #(#vars(#tys),)* Disabled }
        let out = {
            #(let #conds: bool = #cond_exprs;)*
            #(let mut #futs = ::core::pin::pin!(#fut_exprs);)*
            let mut #disabled: u64 = 0;
            #(#disable)*
            ::core::future::poll_fn(|#cx: &mut ::core::task::Context<'_>| {
                if #krate::__private::poll_budget(#cx).is_pending() {
                    return ::core::task::Poll::Pending;
                }
                let start: usize = #start;
                let mut pending = false;
                for i in 0..#n {
                    #[allow(clippy::modulo_one)]
                    match (start + i) % #n {
                        #(#arms)*
                        _ => ::core::unreachable!(),
                    }
                }
                if pending {
                    ::core::task::Poll::Pending
                } else {
                    ::core::task::Poll::Ready(#out_ty::Disabled)
                }
            })
            .await
        };
        #[allow(unreachable_patterns)]
        match out {
            #(#handlers)*
            #out_ty::Disabled => #otherwise,
            _ => ::core::unreachable!("select!: a branch's output stopped matching its pattern"),
        }
    }}
    .into()
}

/// `join!` / `try_join!` input after facade's wrapper: `(crate path) futures, ...`.
struct Join {
    krate: Tokens,
    futs: Vec<Expr>,
}

impl Parse for Join {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_krate(input)?;
        let futs = Punctuated::<Expr, Token![,]>::parse_terminated(input)?;
        Ok(Join {
            krate,
            futs: futs.into_iter().collect(),
        })
    }
}

fn join(input: TokenStream, try_join: bool) -> TokenStream {
    let j = syn::parse_macro_input!(input as Join);
    let krate = &j.krate;
    let site = Span::mixed_site();
    let cx = syn::Ident::new("__cx", site);
    let futs: Vec<_> = (0..j.futs.len())
        .map(|i| format_ident!("__f{}", i, span = site))
        .collect();
    let exprs = &j.futs;
    let polls = futs.iter().map(|f| {
        if try_join {
            quote_spanned! {site=>
                if !#f.as_mut().poll_done(#cx) {
                    done = false;
                } else if let ::core::option::Option::Some(e) = #f.as_mut().take_err() {
                    return ::core::task::Poll::Ready(::core::result::Result::Err(e));
                }
            }
        } else {
            quote_spanned! {site=> done &= #f.as_mut().poll_done(#cx); }
        }
    });
    let outputs = futs.iter().map(|f| {
        if try_join {
            quote_spanned! {site=> #f.as_mut().take_ok() }
        } else {
            quote_spanned! {site=> #f.as_mut().take() }
        }
    });
    let ready = if try_join {
        quote!(::core::result::Result::Ok((#(#outputs,)*)))
    } else {
        quote!((#(#outputs,)*))
    };
    quote_spanned! {site=> {
        #(let mut #futs = ::core::pin::pin!(#krate::__private::MaybeDone::new(#exprs));)*
        ::core::future::poll_fn(|#cx: &mut ::core::task::Context<'_>| {
            if #krate::__private::poll_budget(#cx).is_pending() {
                return ::core::task::Poll::Pending;
            }
            #[allow(unused_mut)]
            let mut done = true;
            #(#polls)*
            if done {
                ::core::task::Poll::Ready(#ready)
            } else {
                ::core::task::Poll::Pending
            }
        })
        .await
    }}
    .into()
}

/// The expansion of `facade::join!`.
#[doc(hidden)]
#[proc_macro]
pub fn join_impl(input: TokenStream) -> TokenStream {
    join(input, false)
}

/// The expansion of `facade::try_join!`.
#[doc(hidden)]
#[proc_macro]
pub fn try_join_impl(input: TokenStream) -> TokenStream {
    join(input, true)
}
