-- The schema and data the PostgreSQL analyst corpus (postgres_analyst.sql) runs against,
-- loaded by the database owner next to the CMDB fixture of tests/common. Deterministic:
-- every value derives from generate_series, so results never vary between runs.
SET TIME ZONE 'UTC';
-- Trusted contrib extensions an analyst meets (the owner may create them).
CREATE EXTENSION pg_trgm;
CREATE EXTENSION fuzzystrmatch;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION citext;
CREATE EXTENSION hstore;
CREATE EXTENSION unaccent;

CREATE TABLE customers (
  id int PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  country char(2) NOT NULL,
  segment text NOT NULL,
  signup_date date NOT NULL,
  created_at timestamptz NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  referred_by int REFERENCES customers(id)
);
CREATE TABLE products (
  id int PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  category text NOT NULL,
  price numeric(10,2) NOT NULL,
  attrs jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE orders (
  id int PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers(id),
  ordered_at timestamptz NOT NULL,
  status text NOT NULL,
  total numeric(12,2) NOT NULL,
  shipping_country char(2),
  discount_code text
);
CREATE INDEX orders_customer_idx ON orders(customer_id);
CREATE INDEX orders_ordered_at_idx ON orders(ordered_at);
CREATE TABLE order_items (
  order_id int NOT NULL REFERENCES orders(id),
  line int NOT NULL,
  product_id int NOT NULL REFERENCES products(id),
  qty int NOT NULL,
  unit_price numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, line)
);
CREATE TABLE events (
  id bigint PRIMARY KEY,
  user_id int REFERENCES customers(id),
  event_type text NOT NULL,
  occurred_at timestamptz NOT NULL,
  session_id uuid NOT NULL,
  ip inet,
  payload jsonb NOT NULL
);
CREATE INDEX events_payload_gin ON events USING gin (payload);
CREATE TABLE metrics (
  ts timestamptz NOT NULL,
  host text NOT NULL,
  cpu double precision NOT NULL,
  mem_mb double precision NOT NULL,
  PRIMARY KEY (host, ts)
);
CREATE TABLE employees (
  id int PRIMARY KEY,
  name text NOT NULL,
  manager_id int REFERENCES employees(id),
  dept text NOT NULL,
  title text NOT NULL,
  salary numeric(10,2) NOT NULL,
  hired_on date NOT NULL
);
CREATE TABLE readings (
  id int PRIMARY KEY,
  taken_on date NOT NULL,
  created_at timestamptz NOT NULL,
  amount numeric(12,3) NOT NULL,
  ref uuid NOT NULL,
  active boolean NOT NULL,
  doc jsonb NOT NULL,
  addr inet NOT NULL,
  span interval NOT NULL,
  label varchar(20) NOT NULL,
  code char(3) NOT NULL,
  feeling mood NOT NULL
);
CREATE VIEW customer_revenue AS
  SELECT c.id AS customer_id, c.name, c.country, sum(o.total) AS revenue, count(o.id) AS orders
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.status <> 'cancelled'
  GROUP BY c.id, c.name, c.country;
COMMENT ON TABLE orders IS 'One row per checkout';

INSERT INTO customers (id, name, email, country, segment, signup_date, created_at, tags, referred_by)
SELECT g,
       'Customer ' || g,
       'user' || g || CASE WHEN g % 3 = 0 THEN '@example.com' WHEN g % 3 = 1 THEN '@mail.test' ELSE '@corp.example.org' END,
       (ARRAY['DE','FR','US','GB','NL','ES'])[1 + g % 6],
       (ARRAY['consumer','smb','enterprise'])[1 + g % 3],
       date '2022-01-01' + (g * 7) % 900,
       timestamptz '2022-01-01 08:00:00+00' + ((g * 7) % 900) * interval '1 day' + (g % 24) * interval '1 hour',
       CASE WHEN g % 4 = 0 THEN ARRAY['vip','newsletter'] WHEN g % 4 = 1 THEN ARRAY['newsletter'] ELSE '{}'::text[] END,
       CASE WHEN g > 10 AND g % 5 = 0 THEN g / 5 END
FROM generate_series(1, 200) g;

INSERT INTO products (id, sku, name, category, price, attrs)
SELECT g,
       'SKU-' || lpad(g::text, 4, '0'),
       (ARRAY['Widget','Gadget','Doohickey','Gizmo','Thingamajig'])[1 + g % 5] || ' ' || g,
       (ARRAY['hardware','software','services','accessories'])[1 + g % 4],
       round((5 + (g * 37) % 500 + (g % 100) / 100.0)::numeric, 2),
       jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g % 3],
                          'weight_kg', round(((g % 20) / 4.0)::numeric, 2),
                          'dims', jsonb_build_object('w', g % 30, 'h', g % 40),
                          'features', to_jsonb(ARRAY['f' || (g % 3), 'f' || (g % 5)]))
FROM generate_series(1, 60) g;

INSERT INTO orders (id, customer_id, ordered_at, status, total, shipping_country, discount_code)
SELECT g,
       1 + (g * 13) % 200,
       timestamptz '2023-01-01 00:00:00+00' + (g * 97) % 730 * interval '1 day' + (g * 7 % 1440) * interval '1 minute',
       (ARRAY['paid','shipped','delivered','cancelled','refunded'])[1 + (g * 3) % 5],
       0,
       (ARRAY['DE','FR','US','GB','NL','ES'])[1 + (g * 5) % 6],
       CASE WHEN g % 7 = 0 THEN 'SPRING' || (g % 3) END
FROM generate_series(1, 1500) g;

INSERT INTO order_items (order_id, line, product_id, qty, unit_price)
SELECT o.id, l, 1 + (o.id * 11 + l * 17) % 60, 1 + (o.id + l) % 4, p.price
FROM orders o
CROSS JOIN generate_series(1, 3) l
JOIN products p ON p.id = 1 + (o.id * 11 + l * 17) % 60
WHERE l <= 1 + o.id % 3;

UPDATE orders o SET total = s.t
FROM (SELECT order_id, sum(qty * unit_price) AS t FROM order_items GROUP BY order_id) s
WHERE s.order_id = o.id;

INSERT INTO events (id, user_id, event_type, occurred_at, session_id, ip, payload)
SELECT g,
       1 + (g * 31) % 200,
       (ARRAY['page_view','add_to_cart','checkout','login','search'])[1 + (g * 7) % 5],
       timestamptz '2024-01-01 00:00:00+00' + (g * 17 % 86400) * interval '1 minute' / 60 + (g % 90) * interval '1 day',
       md5('session' || (g / 4))::uuid,
       ('192.168.' || (g % 10) || '.' || (g % 250))::inet,
       jsonb_build_object('page', '/p/' || (g % 12),
                          'ms', 50 + (g * 13) % 900,
                          'device', jsonb_build_object('os', (ARRAY['ios','android','linux','windows'])[1 + g % 4], 'mobile', g % 4 < 2),
                          'items', CASE WHEN g % 5 = 1 THEN jsonb_build_array(jsonb_build_object('sku', 'SKU-' || lpad((1 + g % 60)::text, 4, '0'), 'qty', 1 + g % 3)) ELSE '[]'::jsonb END,
                          'query', CASE WHEN g % 5 = 4 THEN 'blue widget ' || (g % 9) END)
FROM generate_series(1, 3000) g;

INSERT INTO metrics (ts, host, cpu, mem_mb)
SELECT timestamptz '2024-03-01 00:00:00+00' + m * interval '5 minutes', h,
       round((20 + 30 * sin(m / 20.0) + (m * 7 % 11))::numeric, 2)::float8,
       1024 + (m * 13 % 512)
FROM generate_series(0, 2015) m
CROSS JOIN unnest(ARRAY['web-1','web-2','db-1']) h
WHERE NOT (h = 'web-2' AND m BETWEEN 500 AND 560);

INSERT INTO employees (id, name, manager_id, dept, title, salary, hired_on)
SELECT g,
       'Employee ' || g,
       CASE WHEN g = 1 THEN NULL WHEN g <= 4 THEN 1 WHEN g <= 16 THEN 2 + g % 3 ELSE 5 + g % 12 END,
       (ARRAY['Engineering','Sales','Finance','Support'])[1 + g % 4],
       CASE WHEN g = 1 THEN 'CEO' WHEN g <= 4 THEN 'VP' WHEN g <= 16 THEN 'Manager' ELSE 'Staff' END,
       40000 + (g * 1237) % 60000 + CASE WHEN g <= 4 THEN 100000 ELSE 0 END,
       date '2015-01-01' + (g * 53) % 3000
FROM generate_series(1, 80) g;

INSERT INTO readings (id, taken_on, created_at, amount, ref, active, doc, addr, span, label, code, feeling)
SELECT g,
       date '2024-01-01' + g * 10,
       timestamptz '2024-01-01 12:00:00+00' + g * interval '10 days',
       g * 2.5,
       ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid,
       g % 2 = 0,
       jsonb_build_object('kind', CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, 'n', g),
       ('10.1.0.' || g)::inet,
       g * interval '1 hour',
       'label-' || g,
       'C' || lpad(g::text, 2, '0'),
       (ARRAY['sad','ok','happy'])[1 + g % 3]::mood
FROM generate_series(1, 10) g;

ANALYZE;
