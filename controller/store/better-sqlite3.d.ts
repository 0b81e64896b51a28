// The part of better-sqlite3 we use (the @types package is not a dependency): what kysely's
// SqliteDialect calls, plus pragma() for durability settings.
declare module 'better-sqlite3' {
  interface Statement {
    readonly reader: boolean;
    all(parameters: ReadonlyArray<unknown>): unknown[];
    run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint };
    iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown>;
  }
  interface BetterSqlite3Database {
    close(): void;
    prepare(sql: string): Statement;
    pragma(source: string, options?: { simple?: boolean }): unknown;
  }
  const Database: new (filename: string, options?: { readonly?: boolean; timeout?: number }) => BetterSqlite3Database;
  export default Database;
}
