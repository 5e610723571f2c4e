-- readmodel: an index for the console search (issue 17). `q` matches payment id, tracking number and
-- cancel reason as a case-insensitive substring (ILIKE '%text%'), which no B-tree can serve. One
-- trigram GIN index over the three columns joined by a newline (app/ui/orders.py SEARCH_TEXT is the
-- same expression: the planner uses the index only for exactly this one) answers it in one index scan
-- (three per-column indexes measured 20-50x slower: a BitmapOr of three GIN scans, or a seq scan).
-- pg_trgm is a trusted extension of PostgreSQL's contrib: the database owner may create it. Where it
-- cannot be created (no CREATE right on the database, a server without contrib) the search still
-- works, unindexed, and a NOTICE says why. The operator class is qualified with the extension's
-- schema, wherever a DBA installed it.
DO $$
DECLARE
    ext_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
        RAISE NOTICE 'eda: pg_trgm unavailable (%): the console search stays unindexed', SQLERRM;
        RETURN;
    END;
    SELECT n.nspname INTO ext_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_trgm';
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS orders_search_trgm ON {{schema}}.orders USING gin ('
        '(coalesce(payment_id, '''') || E''\n'' || coalesce(tracking_number, '''') || E''\n'' '
        '|| coalesce(cancel_reason, '''')) %I.gin_trgm_ops)',
        ext_schema
    );
END $$;
