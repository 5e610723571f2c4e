-- readmodel: each order's owner, the authenticated subject it belongs to (OrderCreated v3, issue 14).
-- Orders from before authentication belonged to the customer they were placed for (the upcaster says
-- the same), so existing rows get user_id as text. Customers' reads and lists filter on it.
ALTER TABLE {{schema}}.orders ADD COLUMN IF NOT EXISTS owner text;
UPDATE {{schema}}.orders SET owner = user_id::text WHERE owner IS NULL;
ALTER TABLE {{schema}}.orders ALTER COLUMN owner SET NOT NULL;
CREATE INDEX IF NOT EXISTS orders_owner_idx ON {{schema}}.orders (owner, order_id);
