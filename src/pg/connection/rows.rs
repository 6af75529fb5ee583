//! A statement's result: its columns, its rows, its command tag.
//!
//! Rows are stored flat, not as a `Vec` per row: every DataRow's field
//! bytes are appended to one buffer and each field is remembered as
//! `(start, len)` beside it. Reading 1000 rows therefore costs two growing
//! vectors, not 1000 (or 1000 × columns) small allocations, and a value is
//! only turned into a Rust type when asked for ([`Row::get`]).

use std::fmt;
use std::sync::Arc;

use super::types::{FromSql, Value};
use super::Error;
use crate::pg::protocol::backend::{DataRow, RowDescription};
use crate::pg::protocol::Oid;

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name (`?column?` for an unnamed expression).
    pub name: String,
    /// Its type's oid (see [`types::oid`](super::types::oid)).
    pub type_oid: Oid,
}

/// The columns of a RowDescription, owned.
pub(crate) fn columns_of(desc: &RowDescription<'_>) -> Arc<[Column]> {
    desc.columns()
        .map(|c| Column {
            name: c.name.to_string(),
            type_oid: c.type_oid,
        })
        .collect()
}

/// A field's place in [`Rows::data`]: `len` is `NULL_LEN` for NULL.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: u32,
    len: i32,
}

const NULL_LEN: i32 = -1;

/// The rows and command tag of one statement.
#[derive(Debug, Clone)]
pub struct Rows {
    columns: Arc<[Column]>,
    /// Every field's bytes, row after row.
    data: Vec<u8>,
    /// `columns.len()` entries per row.
    fields: Vec<Field>,
    tag: String,
}

impl Rows {
    pub(crate) fn new(columns: Arc<[Column]>) -> Rows {
        Rows {
            columns,
            data: Vec::new(),
            fields: Vec::new(),
            tag: String::new(),
        }
    }

    pub(crate) fn set_columns(&mut self, columns: Arc<[Column]>) {
        self.columns = columns;
    }

    /// Append one DataRow. The decoder has already checked that every field
    /// lies inside the frame; the column count is checked here.
    pub(crate) fn push(&mut self, row: &DataRow<'_>) -> Result<(), Error> {
        if row.len() != self.columns.len() {
            return Err(Error::Unexpected(format!(
                "DataRow with {} fields for {} columns",
                row.len(),
                self.columns.len()
            )));
        }
        for field in row.fields() {
            let start =
                u32::try_from(self.data.len()).map_err(|_| Error::Unexpected("result over 4 GiB".to_string()))?;
            let len = match field {
                Some(bytes) => {
                    self.data.extend_from_slice(bytes);
                    // A field fits in a frame, and a frame's length is an i32.
                    i32::try_from(bytes.len()).unwrap_or(i32::MAX)
                }
                None => NULL_LEN,
            };
            self.fields.push(Field { start, len });
        }
        Ok(())
    }

    /// Forget the rows and tag, keeping the columns and the buffers'
    /// capacity (a [`RowStream`](super::RowStream) reuses one `Rows` per batch).
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.fields.clear();
        self.tag.clear();
    }

    pub(crate) fn set_tag(&mut self, tag: &str) {
        self.tag.clear();
        self.tag.push_str(tag);
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The command tag: `SELECT 3`, `INSERT 0 1`, `UPDATE 2`, `BEGIN`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The row count in the tag (`INSERT 0 1` → 1, `SELECT 3` → 3); 0 for
    /// commands that count nothing (`BEGIN`).
    pub fn rows_affected(&self) -> u64 {
        self.tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        match self.columns.len() {
            0 => 0,
            width => self.fields.len() / width,
        }
    }

    /// No rows?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Row<'_>> {
        let width = self.columns.len();
        let fields = self.fields.get(i.checked_mul(width)?..(i + 1).checked_mul(width)?)?;
        (i < self.len()).then_some(Row { rows: self, fields })
    }

    /// The rows in order.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

/// One row, borrowed from its [`Rows`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'r> {
    rows: &'r Rows,
    fields: &'r [Field],
}

impl<'r> Row<'r> {
    /// The raw text of a column, `None` for NULL; an error if there is no
    /// such column.
    pub fn raw(&self, column: impl RowIndex) -> Result<Option<&'r [u8]>, Error> {
        let i = self.position(&column)?;
        let field = self.fields[i];
        if field.len == NULL_LEN {
            return Ok(None);
        }
        let start = field.start as usize;
        let end = start + field.len.max(0) as usize;
        Ok(self.rows.data.get(start..end))
    }

    // ANCHOR: row_get
    /// A column as a Rust value, by position or by name:
    /// `row.get::<i32>(0)`, `row.get::<Option<&str>>("name")`.
    ///
    /// SQL NULL reads only as an `Option`: `get::<i32>` on a NULL is an
    /// error that says so, `get::<Option<i32>>` is `Ok(None)`.
    pub fn get<T: FromSql<'r>>(&self, column: impl RowIndex) -> Result<T, Error> {
        let i = self.position(&column)?;
        let raw = self.raw(i)?;
        let column = &self.rows.columns[i];
        T::from_sql(column.type_oid, raw).map_err(|reason| Error::conversion(column.name.clone(), reason))
    }
    // ANCHOR_END: row_get

    /// A column decoded by its type, whatever it is.
    pub fn value(&self, column: impl RowIndex) -> Result<Value, Error> {
        let i = self.position(&column)?;
        Value::decode(self.rows.columns[i].type_oid, self.raw(i)?)
    }

    /// Where a column is, checked against both the fields and the columns
    /// (which `Rows::push` keeps the same length).
    fn position(&self, column: &impl RowIndex) -> Result<usize, Error> {
        column
            .index(&self.rows.columns)
            .filter(|&i| i < self.fields.len())
            .ok_or_else(|| {
                Error::conversion(
                    column.to_string(),
                    format!("does not exist (the row has {} columns)", self.len()),
                )
            })
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// A row of no columns?
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// What names a column of a row: its position (`0`) or its name
/// (`"email"`), as in tokio-postgres. A name is matched exactly and the
/// first column with it wins; a query that returns two columns of the same
/// name (`SELECT a.id, b.id`) should alias them (`b.id AS b_id`).
///
/// A lookup by name walks the columns (a handful, usually), so a loop over
/// many rows that wants the last nanosecond looks the position up once:
/// `rows.columns().iter().position(|c| c.name == "email")`.
pub trait RowIndex: fmt::Display {
    /// The column's position among `columns`, if it has one.
    fn index(&self, columns: &[Column]) -> Option<usize>;
}

impl RowIndex for usize {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl RowIndex for str {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        columns.iter().position(|c| c.name == self)
    }
}

impl<T: RowIndex + ?Sized> RowIndex for &T {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        (**self).index(columns)
    }
}
