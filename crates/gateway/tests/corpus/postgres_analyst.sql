-- Real-world PostgreSQL analyst and DBA queries. Every entry must be allowed by the policy
-- and run through the gateway (tests/pg_analyst.rs), against corpus/postgres_analyst_schema.sql
-- plus the CMDB fixture of tests/common. One statement per entry, each opened by a
-- `-- name: ` line (unique). A new case is one entry.

-- name: basic_filter_order_limit
SELECT id, name, email FROM customers WHERE country = 'DE' ORDER BY signup_date DESC LIMIT 20;

-- name: basic_count_by_status
SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY n DESC;

-- name: basic_having
SELECT customer_id, count(*) AS orders, sum(total) AS revenue FROM orders GROUP BY customer_id HAVING count(*) >= 10 ORDER BY revenue DESC;

-- name: basic_join_three_tables
SELECT o.id, c.name, p.name AS product, i.qty, i.unit_price
FROM orders o JOIN customers c ON c.id = o.customer_id
JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
WHERE o.status = 'delivered' ORDER BY o.id LIMIT 50;

-- name: left_join_customers_without_orders
SELECT c.id, c.name FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL ORDER BY c.id;

-- name: full_outer_join
SELECT coalesce(a.country, b.country) AS country, a.customers, b.orders
FROM (SELECT country, count(*) AS customers FROM customers GROUP BY country) a
FULL OUTER JOIN (SELECT shipping_country AS country, count(*) AS orders FROM orders GROUP BY shipping_country) b USING (country);

-- name: join_using
SELECT order_id, sum(qty) FROM order_items JOIN orders ON orders.id = order_items.order_id GROUP BY order_id ORDER BY 2 DESC LIMIT 5;

-- name: cross_join_series
SELECT c.segment, d::date FROM (SELECT DISTINCT segment FROM customers) c CROSS JOIN generate_series(date '2024-01-01', date '2024-01-03', interval '1 day') d;

-- name: self_join_manager
SELECT e.name, m.name AS manager FROM employees e LEFT JOIN employees m ON m.id = e.manager_id ORDER BY e.id;

-- name: view_query
SELECT country, sum(revenue) AS revenue FROM customer_revenue GROUP BY country ORDER BY revenue DESC NULLS LAST;

-- name: in_list
SELECT count(*) FROM orders WHERE status IN ('paid', 'shipped');

-- name: not_in_subquery
SELECT id FROM products WHERE id NOT IN (SELECT product_id FROM order_items) ORDER BY id;

-- name: in_subquery
SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > 1000) ORDER BY name;

-- name: exists_subquery
SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'refunded') ORDER BY 1;

-- name: not_exists_subquery
SELECT c.name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) ORDER BY 1;

-- name: scalar_subquery_select
SELECT c.name, (SELECT max(o.ordered_at) FROM orders o WHERE o.customer_id = c.id) AS last_order FROM customers c ORDER BY c.id LIMIT 10;

-- name: any_all
SELECT id, total FROM orders WHERE total > ALL (SELECT avg(total) FROM orders GROUP BY status) ORDER BY total DESC LIMIT 5;

-- name: any_array
SELECT id FROM customers WHERE country = ANY (ARRAY['DE', 'FR']) ORDER BY id LIMIT 5;

-- name: between_dates
SELECT count(*) FROM orders WHERE ordered_at BETWEEN '2023-06-01' AND '2023-06-30 23:59:59';

-- name: like_ilike
SELECT name FROM products WHERE name ILIKE 'widget%' OR sku LIKE 'SKU-001_' ORDER BY 1;

-- name: is_distinct_from
SELECT count(*) FROM orders WHERE discount_code IS DISTINCT FROM 'SPRING1';

-- name: coalesce_nullif
SELECT id, coalesce(discount_code, 'none') AS code, total / nullif(id % 3, 0) AS ratio FROM orders ORDER BY id LIMIT 10;

-- name: greatest_least
SELECT id, greatest(total, 100), least(total, 100) FROM orders ORDER BY id LIMIT 5;

-- name: case_searched
SELECT id, CASE WHEN total >= 1000 THEN 'large' WHEN total >= 300 THEN 'medium' ELSE 'small' END AS bucket FROM orders ORDER BY id LIMIT 20;

-- name: case_simple
SELECT status, CASE status WHEN 'paid' THEN 1 WHEN 'shipped' THEN 2 WHEN 'delivered' THEN 3 ELSE 0 END AS stage FROM orders GROUP BY status;

-- name: case_in_aggregate
SELECT country, sum(CASE WHEN segment = 'enterprise' THEN 1 ELSE 0 END) AS enterprise, count(*) FROM customers GROUP BY country ORDER BY country;

-- name: filter_clause
SELECT date_trunc('month', ordered_at) AS month,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status <> 'cancelled') AS kept,
       sum(total) FILTER (WHERE discount_code IS NOT NULL) AS discounted_revenue
FROM orders GROUP BY 1 ORDER BY 1;

-- name: distinct_on_latest_order
SELECT DISTINCT ON (customer_id) customer_id, id, ordered_at, total FROM orders ORDER BY customer_id, ordered_at DESC;

-- name: distinct_count
SELECT count(DISTINCT customer_id) AS buyers, count(DISTINCT shipping_country) AS countries FROM orders;

-- name: window_row_number
SELECT id, customer_id, total, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at) AS nth FROM orders ORDER BY customer_id, nth LIMIT 30;

-- name: window_rank_dense_rank
SELECT name, category, price, rank() OVER w, dense_rank() OVER w, percent_rank() OVER w, cume_dist() OVER w
FROM products WINDOW w AS (PARTITION BY category ORDER BY price DESC) ORDER BY category, price DESC;

-- name: window_ntile
SELECT customer_id, revenue, ntile(4) OVER (ORDER BY revenue DESC) AS quartile FROM (SELECT customer_id, sum(total) AS revenue FROM orders GROUP BY customer_id) t;

-- name: window_lag_lead
SELECT id, ordered_at, total, lag(total) OVER (ORDER BY ordered_at) AS prev, lead(total, 2, 0) OVER (ORDER BY ordered_at) AS next2 FROM orders ORDER BY ordered_at LIMIT 20;

-- name: window_first_last_nth
SELECT DISTINCT category,
  first_value(name) OVER w AS cheapest,
  last_value(name) OVER w AS priciest,
  nth_value(name, 2) OVER w AS second
FROM products WINDOW w AS (PARTITION BY category ORDER BY price ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING);

-- name: window_running_total
SELECT ordered_at::date AS day, sum(total) AS revenue, sum(sum(total)) OVER (ORDER BY ordered_at::date) AS running
FROM orders GROUP BY 1 ORDER BY 1 LIMIT 60;

-- name: window_moving_average_rows
SELECT ts, host, cpu, avg(cpu) OVER (PARTITION BY host ORDER BY ts ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) AS cpu_1h
FROM metrics WHERE host = 'db-1' ORDER BY ts LIMIT 100;

-- name: window_range_interval_frame
SELECT ts, cpu, max(cpu) OVER (ORDER BY ts RANGE BETWEEN interval '30 minutes' PRECEDING AND CURRENT ROW) AS max_30m
FROM metrics WHERE host = 'web-1' ORDER BY ts LIMIT 50;

-- name: window_groups_frame_exclude
SELECT id, total, sum(total) OVER (ORDER BY customer_id GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE CURRENT ROW) FROM orders ORDER BY customer_id LIMIT 20;

-- name: window_share_of_total
SELECT category, sum(price) AS s, round(100.0 * sum(price) / sum(sum(price)) OVER (), 2) AS pct FROM products GROUP BY category ORDER BY pct DESC;

-- name: window_top_n_per_group
SELECT * FROM (
  SELECT p.category, p.name, sum(i.qty) AS units, row_number() OVER (PARTITION BY p.category ORDER BY sum(i.qty) DESC) AS rn
  FROM order_items i JOIN products p ON p.id = i.product_id GROUP BY p.category, p.name
) t WHERE rn <= 3 ORDER BY category, rn;

-- name: window_gaps_and_islands
WITH d AS (SELECT DISTINCT ordered_at::date AS day FROM orders WHERE customer_id = 14),
g AS (SELECT day, day - (row_number() OVER (ORDER BY day))::int AS grp FROM d)
SELECT min(day), max(day), count(*) FROM g GROUP BY grp ORDER BY 1;

-- name: window_time_between_orders
SELECT customer_id, ordered_at, ordered_at - lag(ordered_at) OVER (PARTITION BY customer_id ORDER BY ordered_at) AS gap FROM orders ORDER BY customer_id, ordered_at LIMIT 40;

-- name: window_count_over_partition
SELECT name, dept, salary, count(*) OVER (PARTITION BY dept) AS dept_size, avg(salary) OVER (PARTITION BY dept) AS dept_avg FROM employees ORDER BY dept, salary DESC;

-- name: percentile_cont_disc
SELECT category, percentile_cont(0.5) WITHIN GROUP (ORDER BY price) AS median, percentile_disc(0.9) WITHIN GROUP (ORDER BY price) AS p90 FROM products GROUP BY category;

-- name: percentile_array
SELECT percentile_cont(ARRAY[0.25, 0.5, 0.75, 0.95]) WITHIN GROUP (ORDER BY (payload->>'ms')::int) FROM events;

-- name: mode_aggregate
SELECT mode() WITHIN GROUP (ORDER BY shipping_country) FROM orders;

-- name: stats_aggregates
SELECT avg(total), stddev(total), stddev_pop(total), variance(total), var_samp(total), min(total), max(total) FROM orders;

-- name: corr_regression
SELECT corr(cpu, mem_mb), covar_pop(cpu, mem_mb), regr_slope(mem_mb, cpu), regr_intercept(mem_mb, cpu), regr_r2(mem_mb, cpu), regr_count(mem_mb, cpu) FROM metrics;

-- name: bool_bit_aggregates
SELECT segment, bool_and(country = 'DE'), bool_or(country = 'DE'), every(signup_date > '2021-01-01') FROM customers GROUP BY segment;

-- name: string_agg_array_agg
SELECT country, string_agg(name, ', ' ORDER BY name) AS names, array_agg(id ORDER BY id) AS ids FROM customers WHERE id <= 30 GROUP BY country;

-- name: json_agg_object_agg
SELECT category, json_agg(json_build_object('sku', sku, 'price', price) ORDER BY sku) AS items, jsonb_object_agg(sku, price) AS prices FROM products GROUP BY category;

-- name: grouping_sets
SELECT country, segment, count(*) FROM customers GROUP BY GROUPING SETS ((country), (segment), ()) ORDER BY 1, 2;

-- name: rollup_with_grouping
SELECT date_trunc('quarter', ordered_at) AS q, status, sum(total), grouping(date_trunc('quarter', ordered_at), status) AS lvl
FROM orders GROUP BY ROLLUP (date_trunc('quarter', ordered_at), status) ORDER BY 1, 2;

-- name: cube
SELECT shipping_country, status, count(*) FROM orders GROUP BY CUBE (shipping_country, status) ORDER BY 1 NULLS FIRST, 2 NULLS FIRST;

-- name: cte_simple
WITH big AS (SELECT * FROM orders WHERE total > 500) SELECT status, count(*) FROM big GROUP BY status;

-- name: cte_chained
WITH monthly AS (
  SELECT date_trunc('month', ordered_at) AS m, sum(total) AS revenue FROM orders WHERE status <> 'cancelled' GROUP BY 1
), growth AS (
  SELECT m, revenue, lag(revenue) OVER (ORDER BY m) AS prev FROM monthly
)
SELECT m, revenue, round(100 * (revenue - prev) / prev, 1) AS mom_pct FROM growth ORDER BY m;

-- name: cte_materialized
WITH t AS MATERIALIZED (SELECT customer_id, sum(total) AS s FROM orders GROUP BY 1) SELECT * FROM t WHERE s > 2000 ORDER BY s DESC;

-- name: cte_not_materialized
WITH t AS NOT MATERIALIZED (SELECT * FROM products) SELECT name FROM t WHERE price < 20;

-- name: recursive_org_chart
WITH RECURSIVE chain AS (
  SELECT id, name, manager_id, 1 AS depth, name::text AS path FROM employees WHERE manager_id IS NULL
  UNION ALL
  SELECT e.id, e.name, e.manager_id, c.depth + 1, c.path || ' > ' || e.name FROM employees e JOIN chain c ON e.manager_id = c.id
)
SELECT * FROM chain ORDER BY path;

-- name: recursive_subordinates_count
WITH RECURSIVE sub AS (
  SELECT id, id AS root FROM employees
  UNION ALL
  SELECT e.id, s.root FROM employees e JOIN sub s ON e.manager_id = s.id
)
SELECT root, count(*) - 1 AS reports FROM sub GROUP BY root ORDER BY reports DESC LIMIT 10;

-- name: recursive_series
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n;

-- name: recursive_referral_tree
WITH RECURSIVE r AS (
  SELECT id, referred_by, 0 AS lvl FROM customers WHERE referred_by IS NULL AND id <= 40
  UNION ALL
  SELECT c.id, c.referred_by, r.lvl + 1 FROM customers c JOIN r ON c.referred_by = r.id
)
SELECT lvl, count(*) FROM r GROUP BY lvl ORDER BY lvl;

-- name: recursive_search_cycle
WITH RECURSIVE t(id, manager_id) AS (
  SELECT id, manager_id FROM employees WHERE id = 1
  UNION ALL
  SELECT e.id, e.manager_id FROM employees e JOIN t ON e.manager_id = t.id
) SEARCH DEPTH FIRST BY id SET ord CYCLE id SET is_cycle USING cyc_path
SELECT id, ord, is_cycle FROM t ORDER BY ord LIMIT 20;

-- name: lateral_top_orders
SELECT c.name, o.id, o.total FROM customers c
CROSS JOIN LATERAL (SELECT id, total FROM orders WHERE customer_id = c.id ORDER BY total DESC LIMIT 2) o
WHERE c.id <= 20 ORDER BY c.name, o.total DESC;

-- name: left_join_lateral
SELECT c.id, last.ordered_at FROM customers c
LEFT JOIN LATERAL (SELECT ordered_at FROM orders o WHERE o.customer_id = c.id ORDER BY ordered_at DESC LIMIT 1) last ON true
ORDER BY c.id LIMIT 20;

-- name: lateral_unnest_tags
SELECT t.tag, count(*) FROM customers c, LATERAL unnest(c.tags) AS t(tag) GROUP BY t.tag ORDER BY 2 DESC;

-- name: lateral_generate_series
SELECT e.id, m FROM employees e, LATERAL generate_series(1, 2) AS m WHERE e.id < 4 ORDER BY 1, 2;

-- name: json_arrow_operators
SELECT payload->'device'->>'os' AS os, payload #>> '{device,mobile}' AS mobile, count(*) FROM events GROUP BY 1, 2 ORDER BY 3 DESC;

-- name: jsonb_containment
SELECT count(*) FROM events WHERE payload @> '{"device": {"os": "ios"}}';

-- name: jsonb_key_exists
SELECT count(*) FILTER (WHERE payload ? 'query'), count(*) FILTER (WHERE payload ?| ARRAY['items', 'zzz']), count(*) FILTER (WHERE payload ?& ARRAY['page', 'ms']) FROM events;

-- name: jsonb_path_query
SELECT id, jsonb_path_query_first(payload, '$.items[0].sku') FROM events WHERE jsonb_path_exists(payload, '$.items[*] ? (@.qty > 1)') ORDER BY id LIMIT 10;

-- name: jsonb_path_operator
SELECT count(*) FROM events WHERE payload @? '$.device ? (@.mobile == true)';

-- name: jsonb_path_match
SELECT count(*) FROM events WHERE payload @@ '$.ms > 500';

-- name: jsonb_array_elements
SELECT item->>'sku' AS sku, sum((item->>'qty')::int) AS qty FROM events, jsonb_array_elements(payload->'items') AS item GROUP BY 1 ORDER BY 2 DESC LIMIT 10;

-- name: jsonb_each_text
SELECT key, count(*) FROM products, jsonb_each_text(attrs) GROUP BY key ORDER BY key;

-- name: jsonb_object_keys
SELECT DISTINCT jsonb_object_keys(payload) AS k FROM events ORDER BY k;

-- name: jsonb_typeof_array_length
SELECT jsonb_typeof(payload->'items'), jsonb_array_length(payload->'items'), count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2;

-- name: jsonb_to_recordset
SELECT r.sku, r.qty FROM events, jsonb_to_recordset(payload->'items') AS r(sku text, qty int) ORDER BY events.id LIMIT 10;

-- name: jsonb_build_and_strip
SELECT jsonb_strip_nulls(jsonb_build_object('id', id, 'code', discount_code)) FROM orders ORDER BY id LIMIT 10;

-- name: jsonb_set_and_concat
SELECT jsonb_set(attrs, '{color}', '"black"') || jsonb_build_object('sku', sku) - 'features' FROM products ORDER BY id LIMIT 5;

-- name: jsonb_pretty
SELECT jsonb_pretty(attrs) FROM products WHERE id = 1;

-- name: json_row_to_json
SELECT row_to_json(p) FROM (SELECT id, name, price FROM products ORDER BY id LIMIT 3) p;

-- name: to_jsonb_record
SELECT to_jsonb(c) - 'email' FROM customers c ORDER BY id LIMIT 3;

-- name: json_populate_record
SELECT * FROM jsonb_populate_record(NULL::readings, '{"id": 99, "label": "x"}');

-- name: jsonb_delete_path
SELECT attrs #- '{dims,w}' FROM products ORDER BY id LIMIT 3;

-- name: json_valid_check
SELECT jsonb_typeof('{"a": 1}'::jsonb) = 'object', json_typeof('[1]') = 'array';

-- name: date_trunc_month
SELECT date_trunc('month', ordered_at) AS month, count(*), sum(total) FROM orders GROUP BY 1 ORDER BY 1;

-- name: date_trunc_week_timezone
SELECT date_trunc('week', occurred_at AT TIME ZONE 'Europe/Berlin') AS week, count(*) FROM events GROUP BY 1 ORDER BY 1;

-- name: extract_parts
SELECT extract(year FROM ordered_at) AS y, extract(quarter FROM ordered_at) AS q, extract(dow FROM ordered_at) AS dow, count(*) FROM orders GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 30;

-- name: date_part_epoch
SELECT date_part('epoch', max(ordered_at) - min(ordered_at)) / 86400 AS days_span FROM orders;

-- name: age_function
SELECT name, age(date '2025-01-01', hired_on) AS tenure FROM employees ORDER BY tenure DESC LIMIT 5;

-- name: interval_arithmetic
SELECT count(*) FROM orders WHERE ordered_at >= timestamptz '2024-12-31' - interval '90 days';

-- name: date_arithmetic
SELECT signup_date, signup_date + 30 AS trial_end, (date '2025-01-01' - signup_date) AS days_since FROM customers ORDER BY id LIMIT 10;

-- name: make_date_interval
SELECT make_date(2024, 2, 29), make_interval(days => 3, hours => 4), make_timestamptz(2024, 1, 1, 0, 0, 0, 'UTC');

-- name: justify_interval
SELECT justify_interval(interval '50 days 30 hours'), justify_hours(interval '49 hours'), justify_days(interval '65 days');

-- name: calendar_generate_series
SELECT d::date AS day, coalesce(count(o.id), 0) AS orders
FROM generate_series(date '2023-03-01', date '2023-03-31', interval '1 day') d
LEFT JOIN orders o ON o.ordered_at::date = d::date
GROUP BY d ORDER BY d;

-- name: calendar_months_with_zero_fill
WITH months AS (SELECT generate_series(date '2023-01-01', date '2024-12-01', interval '1 month') AS m)
SELECT m::date, count(o.id) FROM months LEFT JOIN orders o ON date_trunc('month', o.ordered_at) = m GROUP BY m ORDER BY m;

-- name: date_bin
SELECT date_bin(interval '15 minutes', ts, timestamptz '2024-03-01') AS bucket, host, avg(cpu) FROM metrics GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 50;

-- name: overlaps
SELECT count(*) FROM readings WHERE (created_at, span) OVERLAPS (timestamptz '2024-02-01', interval '10 days');

-- name: to_char_dates
SELECT to_char(ordered_at, 'YYYY-MM') AS ym, to_char(ordered_at, 'Dy') AS dow, count(*) FROM orders GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 20;

-- name: to_char_numbers
SELECT to_char(total, 'FM999G999D00') AS formatted, to_char(total, '0000.0') FROM orders ORDER BY id LIMIT 5;

-- name: to_date_to_timestamp
SELECT to_date('05 Dec 2024', 'DD Mon YYYY'), to_timestamp('2024-12-05 10:00', 'YYYY-MM-DD HH24:MI'), to_number('1,234.50', '9G999D99');

-- name: timezone_conversion
SELECT ordered_at AT TIME ZONE 'America/New_York' AS ny, timezone('Asia/Tokyo', ordered_at) AS tokyo FROM orders ORDER BY id LIMIT 5;

-- name: isodow_week
SELECT extract(isodow FROM occurred_at) AS isodow, extract(week FROM occurred_at) AS week, count(*) FROM events GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 20;

-- name: current_date_relative
SELECT count(*) FROM orders WHERE ordered_at > current_date - interval '10 years' AND ordered_at < now();

-- name: round_trunc_ceil_floor
SELECT round(avg(total), 2), trunc(avg(total), 1), ceil(avg(total)), floor(avg(total)), round(avg(total)::float8) FROM orders;

-- name: numeric_math
SELECT abs(-5), mod(17, 5), power(2, 10), sqrt(2), cbrt(27), exp(1), ln(10), log(100), log(2, 64), sign(-3), pi(), div(17, 5), gcd(12, 18), lcm(4, 6);

-- name: width_bucket_histogram
SELECT width_bucket(total, 0, 2000, 10) AS bucket, count(*), min(total), max(total) FROM orders GROUP BY 1 ORDER BY 1;

-- name: integer_division_casts
SELECT order_id, qty * unit_price::float8, (qty / 2)::numeric(5,1), qty::text || ' pcs', CAST(unit_price AS int) FROM order_items ORDER BY order_id LIMIT 5;

-- name: safe_division
SELECT status, sum(total) / NULLIF(count(*), 0) AS avg_order FROM orders GROUP BY status;

-- name: regex_match_operators
SELECT email FROM customers WHERE email ~ '@example\.com$' AND email !~* '^admin' ORDER BY id LIMIT 10;

-- name: regex_similar_to
SELECT sku FROM products WHERE sku SIMILAR TO 'SKU-00[1-3]%' ORDER BY sku;

-- name: regexp_matches
SELECT id, regexp_matches(email, '^([^@]+)@(.+)$') FROM customers ORDER BY id LIMIT 5;

-- name: regexp_replace
SELECT regexp_replace(name, '\s+\d+$', ''), regexp_replace(email, '(\w+)@', '***@', 'g') FROM customers ORDER BY id LIMIT 5;

-- name: regexp_split
SELECT regexp_split_to_array(name, '\s+'), regexp_split_to_table('a,b;c', '[,;]') FROM customers WHERE id = 1;

-- name: regexp_substr_count
SELECT substring(email FROM '@(.*)$') AS domain, count(*) FROM customers GROUP BY 1 ORDER BY 2 DESC;

-- name: regexp_count_like
SELECT regexp_count(name, '[aeiou]'), regexp_like(name, '^cust', 'i'), regexp_instr(name, '\d') FROM customers ORDER BY id LIMIT 3;

-- name: string_functions
SELECT upper(name), lower(email), initcap('hello world'), length(name), char_length(name), octet_length(name), position('@' IN email), strpos(email, '@') FROM customers ORDER BY id LIMIT 5;

-- name: string_split_part
SELECT split_part(email, '@', 2) AS domain, count(*) FROM customers GROUP BY 1;

-- name: string_substr_left_right
SELECT substr(sku, 5), left(name, 3), right(sku, 2), substring(name FROM 1 FOR 4) FROM products ORDER BY id LIMIT 5;

-- name: string_trim_pad
SELECT trim('  x  '), ltrim('xxabc', 'x'), rtrim('abc  '), btrim('--a--', '-'), lpad(id::text, 6, '0'), rpad(sku, 12, '.') FROM products ORDER BY id LIMIT 5;

-- name: string_concat_format
SELECT concat(name, ' <', email, '>'), concat_ws(' | ', name, country, segment), format('%s (%s)', name, country), name || ' / ' || country FROM customers ORDER BY id LIMIT 5;

-- name: string_replace_translate_reverse
SELECT replace(sku, '-', ''), translate(sku, 'SKU', 'sku'), reverse(sku), repeat('*', 3) FROM products ORDER BY id LIMIT 5;

-- name: string_starts_with
SELECT count(*) FROM products WHERE starts_with(name, 'Gizmo');

-- name: string_md5_encode
SELECT md5(email), encode(sha256(convert_to(email, 'UTF8')), 'hex'), encode(convert_to(name, 'UTF8'), 'base64') FROM customers ORDER BY id LIMIT 3;

-- name: string_quote_and_ascii
SELECT quote_literal(name), quote_ident(name), ascii(name), chr(65), to_hex(255) FROM customers ORDER BY id LIMIT 3;

-- name: string_to_array
SELECT string_to_array('a,b,c', ','), array_to_string(ARRAY['x', 'y'], '-'), string_to_table('1 2 3', ' ');

-- name: string_collate_order
SELECT name FROM products ORDER BY name COLLATE "C" LIMIT 5;

-- name: text_search
SELECT id, payload->>'query' FROM events WHERE to_tsvector('english', coalesce(payload->>'query', '')) @@ plainto_tsquery('english', 'widgets') ORDER BY id LIMIT 10;

-- name: text_search_rank
SELECT name, ts_rank(to_tsvector('simple', name), to_tsquery('simple', 'widget | gadget')) AS r FROM products ORDER BY r DESC, name LIMIT 10;

-- name: array_functions
SELECT tags, array_length(tags, 1), cardinality(tags), array_position(tags, 'vip'), array_append(tags, 'x'), array_remove(tags, 'newsletter') FROM customers ORDER BY id LIMIT 8;

-- name: array_contains_overlap
SELECT count(*) FILTER (WHERE tags @> ARRAY['vip']), count(*) FILTER (WHERE tags && ARRAY['newsletter', 'other']), count(*) FILTER (WHERE 'vip' = ANY (tags)) FROM customers;

-- name: unnest_with_ordinality
SELECT c.id, t.tag, t.n FROM customers c, unnest(c.tags) WITH ORDINALITY AS t(tag, n) WHERE c.id <= 8 ORDER BY c.id, t.n;

-- name: unnest_multiple_arrays
SELECT * FROM unnest(ARRAY[1, 2, 3], ARRAY['a', 'b', 'c']) AS t(n, s);

-- name: array_slicing_and_cat
SELECT (ARRAY[1, 2, 3, 4, 5])[2:4], ARRAY[1, 2] || ARRAY[3], array_cat(ARRAY['a'], ARRAY['b']), array_dims(ARRAY[[1, 2], [3, 4]]);

-- name: array_agg_distinct
SELECT customer_id, array_agg(DISTINCT status ORDER BY status) FROM orders GROUP BY customer_id ORDER BY customer_id LIMIT 10;

-- name: array_subquery
SELECT c.id, ARRAY(SELECT o.id FROM orders o WHERE o.customer_id = c.id ORDER BY o.id) AS order_ids FROM customers c ORDER BY c.id LIMIT 5;

-- name: union_all
SELECT 'customer' AS kind, count(*) FROM customers UNION ALL SELECT 'order', count(*) FROM orders UNION ALL SELECT 'product', count(*) FROM products;

-- name: union_distinct
SELECT country FROM customers UNION SELECT shipping_country FROM orders ORDER BY 1;

-- name: intersect
SELECT customer_id FROM orders WHERE status = 'refunded' INTERSECT SELECT customer_id FROM orders WHERE status = 'delivered' ORDER BY 1;

-- name: except
SELECT id FROM customers EXCEPT SELECT customer_id FROM orders ORDER BY 1;

-- name: values_list
SELECT * FROM (VALUES (1, 'one'), (2, 'two'), (3, 'three')) AS v(n, word) ORDER BY n;

-- name: values_join_mapping
SELECT o.status, v.label, count(*) FROM orders o JOIN (VALUES ('paid', 'Open'), ('shipped', 'Open'), ('delivered', 'Done')) v(status, label) ON v.status = o.status GROUP BY 1, 2;

-- name: limit_offset
SELECT id, total FROM orders ORDER BY total DESC, id LIMIT 10 OFFSET 20;

-- name: fetch_first_with_ties
SELECT id, total FROM orders ORDER BY total DESC FETCH FIRST 5 ROWS WITH TIES;

-- name: order_by_nulls
SELECT id, discount_code FROM orders ORDER BY discount_code NULLS FIRST, id LIMIT 10;

-- name: cohort_retention
WITH first AS (SELECT customer_id, date_trunc('month', min(ordered_at)) AS cohort FROM orders GROUP BY 1),
activity AS (SELECT DISTINCT customer_id, date_trunc('month', ordered_at) AS month FROM orders)
SELECT f.cohort, (extract(year FROM age(a.month, f.cohort)) * 12 + extract(month FROM age(a.month, f.cohort)))::int AS month_n, count(*) AS active
FROM first f JOIN activity a USING (customer_id) GROUP BY 1, 2 ORDER BY 1, 2;

-- name: funnel
SELECT count(DISTINCT user_id) FILTER (WHERE event_type = 'page_view') AS viewed,
       count(DISTINCT user_id) FILTER (WHERE event_type = 'add_to_cart') AS carted,
       count(DISTINCT user_id) FILTER (WHERE event_type = 'checkout') AS checked_out
FROM events;

-- name: sessionization
WITH e AS (
  SELECT user_id, occurred_at,
         CASE WHEN occurred_at - lag(occurred_at) OVER (PARTITION BY user_id ORDER BY occurred_at) > interval '30 minutes' THEN 1 ELSE 0 END AS new_session
  FROM events
)
SELECT user_id, sum(new_session) + 1 AS sessions FROM e GROUP BY user_id ORDER BY sessions DESC LIMIT 10;

-- name: rfm_segmentation
WITH rfm AS (
  SELECT customer_id, max(ordered_at) AS last, count(*) AS freq, sum(total) AS monetary FROM orders GROUP BY customer_id
)
SELECT customer_id, ntile(5) OVER (ORDER BY last) AS r, ntile(5) OVER (ORDER BY freq) AS f, ntile(5) OVER (ORDER BY monetary) AS m FROM rfm ORDER BY customer_id LIMIT 20;

-- name: year_over_year
SELECT extract(month FROM ordered_at) AS month,
       sum(total) FILTER (WHERE extract(year FROM ordered_at) = 2023) AS y2023,
       sum(total) FILTER (WHERE extract(year FROM ordered_at) = 2024) AS y2024
FROM orders GROUP BY 1 ORDER BY 1;

-- name: pivot_with_crosstab_style_case
SELECT country,
       count(*) FILTER (WHERE segment = 'consumer') AS consumer,
       count(*) FILTER (WHERE segment = 'smb') AS smb,
       count(*) FILTER (WHERE segment = 'enterprise') AS enterprise
FROM customers GROUP BY country ORDER BY country;

-- name: basket_pairs
SELECT a.product_id AS p1, b.product_id AS p2, count(*) AS together
FROM order_items a JOIN order_items b ON a.order_id = b.order_id AND a.product_id < b.product_id
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 10;

-- name: pareto_cumulative_share
SELECT customer_id, revenue, sum(revenue) OVER (ORDER BY revenue DESC) / sum(revenue) OVER () AS cumulative_share
FROM (SELECT customer_id, sum(total) AS revenue FROM orders GROUP BY 1) t ORDER BY revenue DESC LIMIT 20;

-- name: median_by_month
SELECT date_trunc('month', ordered_at) AS m, percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM orders GROUP BY 1 ORDER BY 1;

-- name: outlier_zscore
WITH s AS (SELECT avg(cpu) AS mu, stddev(cpu) AS sd FROM metrics)
SELECT m.ts, m.host, m.cpu, (m.cpu - s.mu) / s.sd AS z FROM metrics m, s WHERE abs(m.cpu - s.mu) > 1.5 * s.sd ORDER BY z DESC LIMIT 10;

-- name: gap_detection_time_series
SELECT host, ts, next_ts, next_ts - ts AS gap FROM (
  SELECT host, ts, lead(ts) OVER (PARTITION BY host ORDER BY ts) AS next_ts FROM metrics
) t WHERE next_ts - ts > interval '5 minutes' ORDER BY gap DESC;

-- name: hourly_downsample
SELECT date_trunc('hour', ts) AS hour, host, round(avg(cpu)::numeric, 2), max(mem_mb) FROM metrics GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 48;

-- name: salary_bands
SELECT dept, title, min(salary), max(salary), round(avg(salary), 0) FROM employees GROUP BY ROLLUP (dept, title) ORDER BY dept NULLS LAST, title NULLS LAST;

-- name: employees_above_dept_avg
SELECT e.name, e.dept, e.salary FROM employees e WHERE e.salary > (SELECT avg(salary) FROM employees x WHERE x.dept = e.dept) ORDER BY e.dept, e.salary DESC;

-- name: second_highest_salary
SELECT dept, max(salary) FROM employees e WHERE salary < (SELECT max(salary) FROM employees x WHERE x.dept = e.dept) GROUP BY dept;

-- name: duplicate_detection
SELECT lower(split_part(email, '@', 2)) AS domain, count(*) FROM customers GROUP BY 1 HAVING count(*) > 1;

-- name: row_comparison
SELECT id FROM orders WHERE (customer_id, id) > (100, 500) ORDER BY customer_id, id LIMIT 5;

-- name: row_constructor_in
SELECT count(*) FROM order_items WHERE (order_id, line) IN ((1, 1), (2, 1), (3, 2));

-- name: tablesample_free_aggregate_over_join
SELECT p.category, count(DISTINCT o.customer_id) FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id GROUP BY 1;

-- name: conditional_count_ratio
SELECT round(avg((status = 'cancelled')::int) * 100, 2) AS cancel_rate FROM orders;

-- name: inet_functions
SELECT ip, host(ip), network(set_masklen(ip, 24)), family(ip), masklen(ip) FROM events WHERE ip << inet '192.168.1.0/24' ORDER BY id LIMIT 5;

-- name: inet_group_by_subnet
SELECT set_masklen(ip, 24)::cidr AS subnet, count(*) FROM events GROUP BY 1 ORDER BY 1;

-- name: uuid_functions
SELECT session_id::text, count(*) FROM events GROUP BY session_id ORDER BY 2 DESC, 1 LIMIT 5;

-- name: range_types
SELECT count(*) FROM orders WHERE tstzrange('2023-03-01', '2023-04-01') @> ordered_at;

-- name: range_functions
SELECT int4range(1, 10) * int4range(5, 15), upper(int4range(1, 10)), isempty(numrange(1, 1)), daterange('2024-01-01', '2024-02-01') && daterange('2024-01-15', '2024-03-01');

-- name: geometric_point
SELECT point(1, 2) <-> point(4, 6) AS distance;

-- name: boolean_expressions
SELECT count(*) FROM readings WHERE active IS TRUE AND NOT (amount < 5) AND (label LIKE 'label-%' OR code = 'X');

-- name: type_casts_variety
SELECT '42'::int, '3.14'::numeric, 'true'::boolean, '2024-01-01'::date, '1 day'::interval, '{1,2}'::int[], '{"a":1}'::jsonb, CAST('10.0.0.1' AS inet);

-- name: generate_series_numbers
SELECT n, n * n AS sq FROM generate_series(1, 10) AS n;

-- name: generate_series_timestamps
SELECT generate_series(timestamptz '2024-01-01', timestamptz '2024-01-02', interval '6 hours');

-- name: count_distinct_multiple
SELECT count(DISTINCT (customer_id, status)) FROM orders;

-- name: aggregate_order_by_inside
SELECT string_agg(DISTINCT country::text, ',' ORDER BY country::text) FROM customers;

-- name: nested_aggregates_subquery
SELECT avg(n) FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) t;

-- name: correlated_update_free_ranking
SELECT c.id, c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.total > (SELECT avg(total) FROM orders)) AS big_orders FROM customers c ORDER BY big_orders DESC, c.id LIMIT 10;

-- name: with_values_and_join
WITH targets(country, goal) AS (VALUES ('DE', 100000), ('FR', 80000))
SELECT t.country, t.goal, sum(o.total) AS actual FROM targets t LEFT JOIN orders o ON o.shipping_country = t.country GROUP BY 1, 2;

-- name: with_multiple_ctes_referencing
WITH a AS (SELECT id FROM customers WHERE country = 'DE'),
b AS (SELECT customer_id, total FROM orders WHERE customer_id IN (SELECT id FROM a))
SELECT count(*), sum(total) FROM b;

-- name: cte_in_subquery
SELECT * FROM (WITH x AS (SELECT 1 AS one) SELECT one FROM x) s;

-- name: window_in_cte_filter
WITH ranked AS (SELECT id, customer_id, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) AS r FROM orders)
SELECT count(*) FROM ranked WHERE r = 1;

-- name: aggregate_with_window_over_aggregate
SELECT segment, count(*) AS n, rank() OVER (ORDER BY count(*) DESC) FROM customers GROUP BY segment;

-- name: percentile_over_groups_cte
WITH s AS (SELECT host, percentile_cont(0.99) WITHIN GROUP (ORDER BY cpu) AS p99 FROM metrics GROUP BY host)
SELECT * FROM s ORDER BY p99 DESC;

-- name: hypothetical_set_rank
SELECT rank(500) WITHIN GROUP (ORDER BY total), percent_rank(500) WITHIN GROUP (ORDER BY total) FROM orders;

-- name: bit_and_or
SELECT bit_and(id), bit_or(id), bit_xor(id) FROM products;

-- name: md5_bucketing
SELECT abs(hashtext(email)) % 10 AS bucket, count(*) FROM customers GROUP BY 1 ORDER BY 1;

-- name: random_free_sampling_modulo
SELECT * FROM customers WHERE id % 20 = 0 ORDER BY id;

-- name: explain_plain
EXPLAIN SELECT * FROM orders WHERE customer_id = 5;

-- name: explain_costs_off
EXPLAIN (COSTS OFF) SELECT c.country, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.country;

-- name: explain_format_json
EXPLAIN (FORMAT JSON) SELECT * FROM events WHERE payload @> '{"page": "/p/1"}';

-- name: explain_verbose
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM products WHERE price > 100;

-- name: show_timezone
SHOW timezone;

-- name: show_work_mem
SHOW work_mem;

-- name: show_server_version
SHOW server_version;

-- name: show_search_path
SHOW search_path;

-- name: show_statement_timeout
SHOW statement_timeout;

-- name: show_datestyle
SHOW DateStyle;

-- name: show_max_connections
SHOW max_connections;

-- name: dba_version
SELECT version();

-- name: dba_current_database_user
SELECT current_database(), current_user, session_user, current_schema(), current_schemas(false);

-- name: dba_database_size
SELECT pg_size_pretty(pg_database_size(current_database()));

-- name: dba_table_sizes
SELECT relname, pg_size_pretty(pg_total_relation_size(relid)) AS total, pg_size_pretty(pg_relation_size(relid)) AS heap, pg_size_pretty(pg_indexes_size(relid)) AS indexes
FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC;

-- name: dba_table_size_by_name
SELECT pg_size_pretty(pg_total_relation_size('public.orders')), pg_size_pretty(pg_table_size('orders'));

-- name: dba_stat_user_tables
SELECT relname, seq_scan, idx_scan, n_live_tup, n_dead_tup, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze FROM pg_stat_user_tables ORDER BY n_live_tup DESC;

-- name: dba_stat_user_indexes
SELECT relname, indexrelname, idx_scan, idx_tup_read, pg_size_pretty(pg_relation_size(indexrelid)) FROM pg_stat_user_indexes ORDER BY idx_scan;

-- name: dba_statio
SELECT relname, heap_blks_read, heap_blks_hit, round(100.0 * heap_blks_hit / nullif(heap_blks_hit + heap_blks_read, 0), 2) AS hit_pct FROM pg_statio_user_tables ORDER BY relname;

-- name: dba_pg_indexes
SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname;

-- name: dba_unused_indexes
SELECT s.relname, s.indexrelname, s.idx_scan FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid WHERE s.idx_scan = 0 AND NOT i.indisunique;

-- name: dba_stat_activity
SELECT pid, usename, application_name, client_addr, backend_start, state, wait_event_type, wait_event, now() - query_start AS running_for
FROM pg_stat_activity WHERE datname = current_database() ORDER BY backend_start;

-- name: dba_activity_by_state
SELECT state, count(*) FROM pg_stat_activity GROUP BY state ORDER BY 2 DESC;

-- name: dba_locks_blocking
SELECT l.pid, l.locktype, l.mode, l.granted, l.relation::regclass, pg_blocking_pids(l.pid) AS blocked_by FROM pg_locks l ORDER BY l.pid;

-- name: dba_blocked_sessions
SELECT a.pid, a.usename, a.state, pg_blocking_pids(a.pid) FROM pg_stat_activity a WHERE cardinality(pg_blocking_pids(a.pid)) > 0;

-- name: dba_wal_lsn
SELECT pg_current_wal_lsn(), pg_walfile_name(pg_current_wal_lsn());

-- name: dba_wal_lsn_diff
SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'));

-- name: dba_is_in_recovery
SELECT pg_is_in_recovery(), pg_postmaster_start_time(), now() - pg_postmaster_start_time() AS uptime;

-- name: dba_settings
SELECT current_setting('shared_buffers'), current_setting('work_mem'), current_setting('max_connections'), current_setting('effective_cache_size');

-- name: dba_stat_database
SELECT datname, numbackends, xact_commit, xact_rollback, blks_read, blks_hit, deadlocks, temp_files FROM pg_stat_database WHERE datname = current_database();

-- name: dba_bgwriter
SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_clean, buffers_backend FROM pg_stat_bgwriter;

-- name: dba_table_bloat_estimate
SELECT relname, n_dead_tup, n_live_tup, round(n_dead_tup::numeric / nullif(n_live_tup, 0), 3) AS dead_ratio FROM pg_stat_user_tables ORDER BY dead_ratio DESC NULLS LAST;

-- name: dba_pg_class_reltuples
SELECT c.relname, c.relkind, c.reltuples::bigint, c.relpages FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY c.relpages DESC;

-- name: dba_constraints
SELECT conrelid::regclass AS table_name, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2;

-- name: dba_foreign_keys_information_schema
SELECT tc.table_name, kcu.column_name, ccu.table_name AS foreign_table, ccu.column_name AS foreign_column
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema
JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema
WHERE tc.constraint_type = 'FOREIGN KEY' ORDER BY 1, 2;

-- name: dba_information_schema_columns
SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position;

-- name: dba_information_schema_tables
SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2;

-- name: dba_information_schema_views
SELECT table_name, view_definition FROM information_schema.views WHERE table_schema = 'public';

-- name: dba_pg_views_and_defs
SELECT viewname, pg_get_viewdef(viewname::regclass, true) FROM pg_views WHERE schemaname = 'public';

-- name: dba_pg_attribute_columns
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a WHERE a.attrelid = 'public.orders'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;

-- name: dba_table_comments
SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1;

-- name: dba_column_comments
SELECT col_description('public.orders'::regclass, 1);

-- name: dba_index_definitions
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid), indisprimary, indisunique FROM pg_index WHERE indrelid = 'public.orders'::regclass;

-- name: dba_roles
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname NOT LIKE 'pg\_%' ORDER BY rolname;

-- name: dba_privileges
SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants WHERE table_schema = 'public' ORDER BY 2, 1, 3;

-- name: dba_has_privilege
SELECT has_table_privilege('orders', 'SELECT'), has_schema_privilege('public', 'USAGE'), has_database_privilege(current_database(), 'CONNECT');

-- name: dba_extensions
SELECT extname, extversion FROM pg_extension ORDER BY 1;

-- name: dba_available_extensions
SELECT name, default_version, installed_version FROM pg_available_extensions ORDER BY name LIMIT 20;

-- name: dba_schemas
SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' ORDER BY 1;

-- name: dba_sequences
SELECT schemaname, sequencename, last_value, increment_by FROM pg_sequences;

-- name: dba_functions_list
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 2;

-- name: dba_triggers
SELECT event_object_table, trigger_name, event_manipulation, action_timing FROM information_schema.triggers ORDER BY 1, 2;

-- name: dba_vacuum_progress
SELECT pid, relid::regclass, phase, heap_blks_total, heap_blks_scanned FROM pg_stat_progress_vacuum;

-- name: dba_replication
SELECT client_addr, state, sent_lsn, write_lsn, flush_lsn, replay_lsn FROM pg_stat_replication;

-- name: dba_replication_slots
SELECT slot_name, slot_type, active, restart_lsn FROM pg_replication_slots;

-- name: dba_txid_wraparound
SELECT datname, age(datfrozenxid) AS xid_age FROM pg_database ORDER BY 2 DESC;

-- name: dba_relation_age
SELECT c.relname, age(c.relfrozenxid) FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY 2 DESC;

-- name: dba_long_transactions
SELECT pid, usename, xact_start, now() - xact_start AS xact_age, state FROM pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start LIMIT 10;

-- name: dba_connection_count_by_db
SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL GROUP BY datname;

-- name: dba_tablespaces
SELECT spcname, pg_size_pretty(pg_tablespace_size(oid)) FROM pg_tablespace WHERE spcname = 'pg_default';

-- name: dba_databases
SELECT datname, pg_size_pretty(pg_database_size(datname)), datcollate, datallowconn FROM pg_database WHERE datistemplate = false ORDER BY 1 LIMIT 5;

-- name: dba_stat_statements_free_io
SELECT relname, idx_blks_hit, idx_blks_read FROM pg_statio_user_indexes ORDER BY relname;

-- name: dba_type_of_value
SELECT pg_typeof(total), pg_typeof(ordered_at), pg_column_size(payload) FROM orders, events WHERE orders.id = 1 AND events.id = 1;

-- name: dba_regclass_oid
SELECT 'orders'::regclass::oid, to_regclass('public.orders'), to_regclass('public.missing');

-- name: dba_enum_values
SELECT enumlabel FROM pg_enum WHERE enumtypid = 'mood'::regtype ORDER BY enumsortorder;

-- name: dba_pg_stats
SELECT attname, n_distinct, null_frac, avg_width, correlation FROM pg_stats WHERE tablename = 'orders' ORDER BY attname;

-- name: dba_txid_current_snapshot
SELECT pg_current_snapshot(), txid_current_if_assigned();

-- name: dba_backend_pid
SELECT pg_backend_pid(), inet_server_port(), inet_server_addr();

-- name: dba_conf_files
SELECT current_setting('server_version_num'), current_setting('TimeZone');

-- name: cmdb_servers_by_department
SELECT d.name, count(s.id), round(avg(s.cpu_cores), 1) FROM departments d LEFT JOIN servers s ON s.department_id = d.id GROUP BY d.name ORDER BY 1;

-- name: cmdb_incidents_per_week
SELECT date_trunc('week', opened_at) AS w, severity, count(*) FROM incidents GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 40;

-- name: cmdb_servers_meta_json
SELECT meta->>'os' AS os, count(*) FILTER (WHERE status = 'active') AS active, count(*) FROM servers GROUP BY 1;

-- name: cmdb_servers_tags
SELECT tag, count(*) FROM servers, unnest(tags) AS tag GROUP BY tag ORDER BY 2 DESC;

-- name: cmdb_servers_subnet
SELECT network(set_masklen(ip, 16)) AS net, count(*) FROM servers GROUP BY 1;

-- name: cmdb_apps_without_incidents
SELECT a.name FROM applications a WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.server_id = a.server_id AND i.severity >= 4) ORDER BY a.id LIMIT 10;

-- name: cmdb_mttr_like
SELECT severity, count(*), min(opened_at), max(opened_at), max(opened_at) - min(opened_at) AS spread FROM incidents GROUP BY severity ORDER BY severity;

-- name: cmdb_enum_cast
SELECT 'happy'::mood, enum_range(NULL::mood);

-- name: window_percent_change_by_host
SELECT host, ts, cpu, round(((cpu - lag(cpu) OVER w) / nullif(lag(cpu) OVER w, 0) * 100)::numeric, 1) AS pct
FROM metrics WINDOW w AS (PARTITION BY host ORDER BY ts) ORDER BY host, ts LIMIT 30;

-- name: window_first_event_per_user
SELECT DISTINCT user_id, first_value(event_type) OVER (PARTITION BY user_id ORDER BY occurred_at) AS first_event FROM events ORDER BY user_id LIMIT 20;

-- name: window_running_count_distinct_workaround
SELECT day, count(*) FILTER (WHERE first_day = day) AS new_users FROM (
  SELECT occurred_at::date AS day, min(occurred_at::date) OVER (PARTITION BY user_id) AS first_day FROM events
) t GROUP BY day ORDER BY day LIMIT 20;

-- name: case_with_subquery_and_in
SELECT id, CASE WHEN customer_id IN (SELECT id FROM customers WHERE segment = 'enterprise') THEN 'ent' ELSE 'other' END FROM orders ORDER BY id LIMIT 10;

-- name: order_by_expression_and_alias
SELECT name, price * 1.19 AS gross FROM products ORDER BY gross DESC, name LIMIT 5;

-- name: group_by_ordinal_and_alias
SELECT country AS c, segment AS s, count(*) FROM customers GROUP BY 1, 2 ORDER BY c, s;

-- name: having_with_filter
SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) FILTER (WHERE status = 'refunded') >= 2 ORDER BY 1;

-- name: quoted_identifiers
SELECT "id", "name" AS "Customer Name" FROM "customers" ORDER BY "id" LIMIT 3;

-- name: schema_qualified
SELECT count(*) FROM public.orders o JOIN public.customers c ON c.id = o.customer_id;

-- name: comments_in_query
SELECT /* revenue */ sum(total) -- total revenue
FROM orders;

-- name: dollar_quoted_literal
SELECT $$it's a literal$$ AS s, E'tab\tsep' AS e;

-- name: unicode_literals
SELECT 'Müller' AS name, length('日本語'), upper('straße');

-- name: numeric_literals
SELECT 1e3, 0.5::float4, 1000000, 1.5e-2, -0.0;

-- name: boolean_and_null_literals
SELECT true AND NULL, false OR NULL, NULL IS NULL, NOT true;

-- name: string_comparison_collation
SELECT name FROM products WHERE name > 'G' ORDER BY name LIMIT 5;

-- name: lower_unique_domains
SELECT DISTINCT lower(split_part(email, '@', 2)) FROM customers ORDER BY 1;

-- name: date_series_week_labels
SELECT to_char(d, 'IYYY-"W"IW') AS iso_week FROM generate_series(date '2024-01-01', date '2024-02-01', interval '1 week') d;

-- name: last_day_of_month
SELECT (date_trunc('month', d) + interval '1 month - 1 day')::date AS last_day FROM generate_series(date '2024-01-01', date '2024-12-01', interval '1 month') d;

-- name: business_days_count
SELECT count(*) FROM generate_series(date '2024-01-01', date '2024-01-31', interval '1 day') d WHERE extract(isodow FROM d) < 6;

-- name: json_build_nested_report
SELECT json_build_object('country', country, 'customers', count(*), 'segments', json_agg(DISTINCT segment)) FROM customers GROUP BY country ORDER BY country;

-- name: jsonb_array_to_rows_and_filter
SELECT p.id, f FROM products p, jsonb_array_elements_text(p.attrs->'features') f WHERE f = 'f1' ORDER BY p.id LIMIT 10;

-- name: jsonb_numeric_compare
SELECT count(*) FROM products WHERE (attrs->>'weight_kg')::numeric > 2 AND attrs->'dims'->>'w' IS NOT NULL;

-- name: json_typeof_and_cast
SELECT json_typeof('{"a": [1, 2]}'::json->'a'), ('{"a": 5}'::jsonb->'a')::int + 1;

-- name: jsonb_agg_filter
SELECT user_id, jsonb_agg(DISTINCT event_type) FILTER (WHERE event_type <> 'page_view') FROM events GROUP BY user_id ORDER BY user_id LIMIT 5;

-- name: array_min_max_via_unnest
SELECT c.id, (SELECT max(t) FROM unnest(c.tags) t) FROM customers c ORDER BY c.id LIMIT 5;

-- name: array_ndims_fill_small
SELECT array_ndims(ARRAY[[1]]), array_upper(ARRAY[1, 2, 3], 1), array_fill(0, ARRAY[3]);

-- name: sum_over_rollup_percent
SELECT country, segment, count(*), round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY country), 1) FROM customers GROUP BY country, segment ORDER BY 1, 2;

-- name: top_products_per_month
SELECT * FROM (
  SELECT date_trunc('month', o.ordered_at) AS m, i.product_id, sum(i.qty) AS units,
         dense_rank() OVER (PARTITION BY date_trunc('month', o.ordered_at) ORDER BY sum(i.qty) DESC) AS r
  FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY 1, 2
) t WHERE r = 1 ORDER BY m;

-- name: avg_basket_size
SELECT round(avg(items), 2) FROM (SELECT order_id, sum(qty) AS items FROM order_items GROUP BY order_id) t;

-- name: discount_usage_by_code
SELECT discount_code, count(*), round(avg(total), 2) FROM orders WHERE discount_code IS NOT NULL GROUP BY ROLLUP (discount_code) ORDER BY 1 NULLS LAST;

-- name: customers_signups_cumulative
SELECT signup_date, count(*) OVER (ORDER BY signup_date) AS cumulative FROM customers ORDER BY signup_date LIMIT 20;

-- name: events_per_hour_heatmap
SELECT extract(dow FROM occurred_at) AS dow, extract(hour FROM occurred_at) AS hour, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2;

-- name: time_to_first_order
SELECT round(avg(extract(epoch FROM (f.first_order - c.created_at)) / 86400)::numeric, 1) AS avg_days
FROM customers c JOIN (SELECT customer_id, min(ordered_at) AS first_order FROM orders GROUP BY 1) f ON f.customer_id = c.id;

-- name: employees_tenure_buckets
SELECT CASE WHEN hired_on < '2017-01-01' THEN 'veteran' WHEN hired_on < '2020-01-01' THEN 'established' ELSE 'new' END AS bucket, count(*) FROM employees GROUP BY 1;

-- name: employees_manager_span
SELECT m.name, count(e.id) AS direct_reports FROM employees m JOIN employees e ON e.manager_id = m.id GROUP BY m.name ORDER BY 2 DESC, 1 LIMIT 10;

-- name: readings_interval_stats
SELECT sum(span), avg(span), max(span) - min(span) FROM readings;

-- name: readings_uuid_and_inet
SELECT ref, addr, addr + 1, ref::text LIKE '0000%' FROM readings ORDER BY id LIMIT 3;

-- name: metrics_last_value_per_host
SELECT DISTINCT ON (host) host, ts, cpu FROM metrics ORDER BY host, ts DESC;

-- name: metrics_rolling_stddev
SELECT host, ts, stddev_samp(cpu) OVER (PARTITION BY host ORDER BY ts ROWS 5 PRECEDING) FROM metrics ORDER BY host, ts LIMIT 20;

-- name: metrics_threshold_crossings
SELECT host, count(*) FROM (
  SELECT host, cpu >= 50 AS hot, lag(cpu >= 50) OVER (PARTITION BY host ORDER BY ts) AS was_hot FROM metrics
) t WHERE hot AND NOT was_hot GROUP BY host ORDER BY host;

-- name: values_with_types_in_cte
WITH params(start_at, end_at) AS (VALUES (timestamptz '2023-01-01', timestamptz '2023-07-01'))
SELECT count(*) FROM orders, params WHERE ordered_at >= start_at AND ordered_at < end_at;

-- name: exists_with_correlation_and_and
SELECT p.name FROM products p WHERE EXISTS (SELECT 1 FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.product_id = p.id AND o.status = 'refunded' AND i.qty >= 3) ORDER BY 1;

-- name: select_star_single_table
SELECT * FROM products ORDER BY id LIMIT 5;

-- name: select_qualified_star_join
SELECT o.*, c.name FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 5;

-- name: table_statement
TABLE departments;

-- name: values_statement
VALUES (1, 'a'), (2, 'b');

-- name: nullif_coalesce_chain
SELECT coalesce(nullif(discount_code, ''), nullif(status, 'paid'), 'n/a') FROM orders ORDER BY id LIMIT 10;

-- name: string_agg_within_window_frame
SELECT id, string_agg(status, ',') OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM orders ORDER BY id LIMIT 10;

-- name: count_star_vs_count_column
SELECT count(*), count(discount_code), count(*) - count(discount_code) AS missing FROM orders;

-- name: approximate_count_from_catalog
SELECT reltuples::bigint AS estimate FROM pg_class WHERE oid = 'public.events'::regclass;

-- name: sample_order_by_random
SELECT id, name FROM customers ORDER BY random() LIMIT 5;

-- name: tablesample_bernoulli_repeatable
SELECT count(*) FROM events TABLESAMPLE BERNOULLI (10) REPEATABLE (42);

-- name: tablesample_system
SELECT avg(total) FROM orders TABLESAMPLE SYSTEM (50);

-- name: explain_analyze
EXPLAIN ANALYZE SELECT count(*) FROM orders WHERE status = 'paid';

-- name: explain_analyze_buffers_json
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM customers WHERE country = 'DE';

-- name: clock_and_statement_time
SELECT now(), current_timestamp, statement_timestamp(), clock_timestamp() - statement_timestamp() < interval '1 minute', localtimestamp, current_time;

-- name: gen_random_uuid_qualified
-- (Unqualified, it is refused here: pgcrypto's public.gen_random_uuid, volatile, is also a
-- candidate on the search path.)
SELECT pg_catalog.gen_random_uuid() IS NOT NULL;

-- name: trgm_similarity
SELECT name, similarity(name, 'Widgit 5') AS s FROM products WHERE name % 'Widgit 5' ORDER BY s DESC LIMIT 5;

-- name: trgm_word_similarity
SELECT word_similarity('gadget', name), show_trgm('abc') FROM products ORDER BY 1 DESC LIMIT 3;

-- name: fuzzystrmatch
SELECT levenshtein(name, 'Gadget 1'), soundex(name), difference(name, 'Gadjet') FROM products ORDER BY 1 LIMIT 5;

-- name: pgcrypto_digest
SELECT encode(digest(email, 'sha256'), 'hex') FROM customers ORDER BY id LIMIT 3;

-- name: citext_compare
SELECT count(*) FROM customers WHERE email::citext = 'USER3@EXAMPLE.COM';

-- name: xml_functions
SELECT xmlelement(name customer, xmlattributes(id AS id), name) FROM customers ORDER BY id LIMIT 3;

-- name: xmlagg_forest
SELECT xmlagg(xmlforest(sku, price) ORDER BY sku) FROM products WHERE id < 4;

-- name: json_non_b_functions
SELECT json_extract_path_text(json_build_object('a', json_build_object('b', 1)), 'a', 'b'), json_array_length('[1,2,3]'), json_object_keys('{"x":1,"y":2}');

-- name: jsonb_insert_path_array
SELECT jsonb_insert('{"a":[1,2]}', '{a,0}', '0'), jsonb_path_query_array(payload, '$.items[*].sku') FROM events WHERE id = 1;

-- name: generate_subscripts
SELECT generate_subscripts(ARRAY['a', 'b', 'c'], 1);

-- name: like_any_array
SELECT count(*) FROM customers WHERE email LIKE ANY (ARRAY['%@example.com', '%@mail.test']);

-- name: composite_field_access
SELECT (c).name, (c).country FROM (SELECT c FROM customers c ORDER BY id LIMIT 3) t;

-- name: row_constructor_compare_to_record
SELECT ROW(1, 'a') = ROW(1, 'a'), (1, 2) < (1, 3);

-- name: varchar_bpchar_casts
SELECT CAST(name AS varchar(8)), country::bpchar, country::text || '!' FROM customers ORDER BY id LIMIT 3;

-- name: group_by_distinct_rollup
SELECT country, segment, count(*) FROM customers GROUP BY DISTINCT ROLLUP (country, segment), ROLLUP (country) ORDER BY 1, 2;

-- name: dba_serial_sequence_and_privileges
SELECT pg_get_serial_sequence('public.servers', 'id'), has_column_privilege('public.orders', 'total', 'SELECT'), pg_size_bytes('1 GB');

-- name: dba_function_and_trigger_defs
SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' AND p.proname = 'shout';

-- name: dba_relation_filenode
SELECT pg_relation_filenode('public.orders'), pg_relation_filepath('public.orders');

-- name: dba_stat_get_functions
SELECT c.relname, pg_stat_get_live_tuples(c.oid), pg_stat_get_dead_tuples(c.oid) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1;

-- name: dba_activity_locks_join
SELECT a.pid, a.usename, l.mode, l.relation::regclass, a.wait_event FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.relation IS NOT NULL ORDER BY 1;

-- name: dba_wal_receiver_and_archiver
SELECT archived_count, failed_count FROM pg_stat_archiver;

-- name: dba_current_setting_missing_ok
SELECT current_setting('application_name'), current_setting('dbward.unknown', true);

-- name: dba_stat_wal
SELECT wal_records, wal_bytes FROM pg_stat_wal;

-- name: format_identifiers
SELECT format('%I.%I', 'public', 'Orders'), format('%L', 'it''s'), quote_nullable(NULL);

-- name: string_agg_hstore
SELECT hstore(ARRAY['a', 'b'], ARRAY['1', '2']) -> 'a';

-- name: unaccent_search
SELECT unaccent('Crème Brûlée');

-- name: enum_column_filter
SELECT id, feeling FROM readings WHERE feeling = 'happy' ORDER BY id;

-- name: enum_ordering
SELECT feeling, count(*) FROM readings GROUP BY feeling ORDER BY feeling;
