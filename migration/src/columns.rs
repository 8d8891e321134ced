//! Column shapes shared by the migrations, so every table spells ids, timestamps and money the same way.

use sea_orm_migration::prelude::*;

/// A 64-bit auto-increment primary key (SQLite turns it into its rowid alias).
pub fn id<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().auto_increment().primary_key().take()
}

/// A required reference to another table's id.
pub fn reference<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}

/// A required UTC timestamp (timestamptz on PostgreSQL).
pub fn timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().take()
}

/// An optional UTC timestamp.
pub fn timestamp_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().take()
}

/// A required short string (ids, statuses, sizes).
pub fn string<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().not_null().take()
}

/// An optional short string.
pub fn string_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().null().take()
}

/// Optional free text of any length.
pub fn text_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}

/// A JSON document (jsonb on PostgreSQL, text on SQLite).
pub fn json<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().take()
}

/// An amount of money in minor units (cents), never a float.
pub fn money<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(0).take()
}

/// A foreign key from `from_table.from_col` to `to_table.id`.
pub fn foreign_key<F: IntoIden, C: IntoIden, T: IntoIden, I: IntoIden>(
    from_table: F,
    from_col: C,
    to_table: T,
    to_id: I,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_id)
        .on_delete(on_delete)
        .on_update(ForeignKeyAction::Cascade)
        .take()
}

/// An index named `name` on `table` over `cols`, in order.
pub fn index<T: IntoIden + Copy + 'static>(name: &str, table: T, cols: &[T]) -> IndexCreateStatement {
    let mut index = Index::create().name(name).table(table).take();
    for col in cols {
        index.col(*col);
    }
    index
}
