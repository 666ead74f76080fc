//! Token types of Python code (ANA-11), from the tree-sitter Python grammar.
//!
//! Each document of the code domain (an EOS-delimited run, possibly cut at a
//! block edge; tree-sitter recovers from the cut) is decoded to bytes and
//! parsed. Every byte gets a class: inside a `string` or `comment` node the
//! whole node's class; otherwise the class of its leaf: `integer`/`float` →
//! number, `identifier` → identifier, `true`/`false`/`none` and unnamed
//! alphabetic leaves (`def`, `return` …) → keyword, other unnamed leaves
//! (`+`, `(`, `:` …) → operator (punctuation included); bytes outside every
//! leaf are whitespace when they are ASCII whitespace, else other. A GPT-2
//! token takes the class of its first non-whitespace byte, or whitespace
//! when all its bytes are; EOS is left out.

use moe_data::tokenizer::{EOS_ID, Gpt2Tokenizer};
use tree_sitter::{Node, Parser};

use crate::error::{AnalysisError, Result};

/// A Python token class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenClass {
    /// `def`, `return`, `True` …
    Keyword,
    /// Names.
    Identifier,
    /// Operators and punctuation.
    Operator,
    /// Integer and float literals.
    Number,
    /// String literals, f-strings included.
    String,
    /// Comments.
    Comment,
    /// Spaces, tabs, newlines.
    Whitespace,
    /// Anything else (parse errors, stray bytes).
    Other,
}

impl TokenClass {
    /// Every class, in report order.
    pub const ALL: [TokenClass; 8] = [
        Self::Keyword,
        Self::Identifier,
        Self::Operator,
        Self::Number,
        Self::String,
        Self::Comment,
        Self::Whitespace,
        Self::Other,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::Identifier => "identifier",
            Self::Operator => "operator",
            Self::Number => "number",
            Self::String => "string",
            Self::Comment => "comment",
            Self::Whitespace => "whitespace",
            Self::Other => "other",
        }
    }

    /// Index in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A Python parser.
pub struct PythonLexer {
    parser: Parser,
}

impl PythonLexer {
    /// A parser for the tree-sitter Python grammar.
    pub fn new() -> Result<Self> {
        let mut parser = Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .map_err(|e| AnalysisError::Lexer(e.to_string()))?;
        Ok(Self { parser })
    }

    /// The class of every byte of `source`.
    pub fn byte_classes(&mut self, source: &[u8]) -> Vec<TokenClass> {
        let mut classes: Vec<TokenClass> = source
            .iter()
            .map(|b| {
                if b.is_ascii_whitespace() {
                    TokenClass::Whitespace
                } else {
                    TokenClass::Other
                }
            })
            .collect();
        if let Some(tree) = self.parser.parse(source, None) {
            mark(tree.root_node(), &mut classes);
        }
        classes
    }

    /// The class of every token of one document (GPT-2 ids; EOS gets `None`).
    pub fn classify(&mut self, ids: &[u32], tokenizer: &Gpt2Tokenizer) -> Vec<Option<TokenClass>> {
        let mut source = Vec::new();
        let mut spans = Vec::with_capacity(ids.len());
        for &id in ids {
            let start = source.len();
            if id != EOS_ID {
                source.extend_from_slice(tokenizer.token_bytes(id).unwrap_or_default());
            }
            spans.push(start..source.len());
        }
        let classes = self.byte_classes(&source);
        ids.iter()
            .zip(spans)
            .map(|(&id, span)| {
                (id != EOS_ID).then(|| {
                    span.clone()
                        .find(|&b| !source[b].is_ascii_whitespace())
                        .map_or(TokenClass::Whitespace, |b| classes[b])
                })
            })
            .collect()
    }
}

/// Assigns classes of `node`'s bytes (recursively).
fn mark(node: Node<'_>, classes: &mut [TokenClass]) {
    let whole = match node.kind() {
        "string" | "concatenated_string" => Some(TokenClass::String),
        "comment" => Some(TokenClass::Comment),
        _ if node.child_count() == 0 => leaf_class(node),
        _ => None,
    };
    if let Some(class) = whole {
        let range = node.start_byte().min(classes.len())..node.end_byte().min(classes.len());
        for c in &mut classes[range] {
            if *c != TokenClass::Whitespace || class != TokenClass::Other {
                *c = class;
            }
        }
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        mark(child, classes);
    }
}

fn leaf_class(node: Node<'_>) -> Option<TokenClass> {
    let kind = node.kind();
    Some(match kind {
        "integer" | "float" => TokenClass::Number,
        "identifier" => TokenClass::Identifier,
        "true" | "false" | "none" => TokenClass::Keyword,
        _ if node.is_error() || node.is_missing() => return None,
        _ if !node.is_named() && kind.chars().all(|c| c.is_ascii_alphabetic() || c == '_') => {
            TokenClass::Keyword
        }
        _ if !node.is_named() => TokenClass::Operator,
        _ => TokenClass::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_a_small_function() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let mut lexer = PythonLexer::new().unwrap();
        let src = "def f(x):\n    # add\n    return x + 1.5 * 'ab'\n";
        let ids = tok.encode(src);
        let classes = lexer.classify(&ids, &tok);
        let by_text: Vec<(String, &str)> = ids
            .iter()
            .zip(&classes)
            .map(|(&id, c)| (tok.decode(&[id]), c.map_or("eos", |c| c.name())))
            .collect();
        let class_of = |text: &str| {
            by_text
                .iter()
                .find(|(t, _)| t == text)
                .map(|(_, c)| *c)
                .unwrap_or("missing")
        };
        assert_eq!(class_of("def"), "keyword");
        assert_eq!(class_of(" f"), "identifier");
        assert_eq!(class_of("("), "operator");
        assert_eq!(class_of(" return"), "keyword");
        assert_eq!(class_of(" +"), "operator");
        assert_eq!(class_of(" #"), "comment");
        assert_eq!(class_of(" 1"), "number");
        assert_eq!(class_of(" '"), "string");
        assert_eq!(class_of("\n"), "whitespace");
    }
}
