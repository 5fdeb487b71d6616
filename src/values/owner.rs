//! Whose something is: a container, named and identified.

/// Whose an element is: written as its comment, `NAME ID`, so
/// `nft list ruleset`, a refused batch and `gc` can tell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub name: String,
    pub id: String,
}

impl Owner {
    /// The element comment.
    pub fn comment(&self) -> String {
        format!("{} {}", self.name, self.id)
    }

    /// Reads an element comment back; None for comments we did not write.
    pub fn from_comment(comment: &str) -> Option<Owner> {
        let (name, id) = comment.rsplit_once(' ')?;
        (!name.is_empty() && !id.is_empty() && !name.contains(' ')).then(|| Owner {
            name: name.to_string(),
            id: id.to_string(),
        })
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.id)
    }
}
