-- Analyst corpus for MariaDB: every query must be allowed by dbward AND run on the real
-- server against the fixture CMDB (departments, servers, applications, incidents).
-- One query per line; lines starting with `--` are comments.
SELECT COUNT(*) FROM servers
SELECT status, COUNT(*) AS n FROM servers GROUP BY status ORDER BY n DESC
SELECT d.name, COUNT(s.id) AS servers FROM departments d LEFT JOIN servers s ON s.department_id = d.id GROUP BY d.name
SELECT d.name, SUM(s.cpu_cores) AS cores FROM departments d JOIN servers s ON s.department_id = d.id GROUP BY d.name WITH ROLLUP
SELECT department_id, status, COUNT(*) FROM servers GROUP BY department_id, status WITH ROLLUP
SELECT id MOD 4 AS bucket, COUNT(*) FROM servers GROUP BY bucket
SELECT id, hostname FROM servers WHERE id MOD 7 = 0 ORDER BY id LIMIT 10
SELECT EXTRACT(YEAR_MONTH FROM opened_at) AS ym, COUNT(*) FROM incidents GROUP BY ym ORDER BY ym
SELECT opened_at + INTERVAL '1:30' HOUR_MINUTE FROM incidents ORDER BY id LIMIT 5
SELECT DATE_ADD(opened_at, INTERVAL '1 12' DAY_HOUR) FROM incidents LIMIT 3
SELECT DATE_SUB(opened_at, INTERVAL '0:10' MINUTE_SECOND) FROM incidents LIMIT 3
SELECT CHAR(72, 105 USING utf8mb4)
SELECT CHAR(77, 97, 114, 105, 97 USING latin1) AS w
SHOW TABLE STATUS
SHOW TABLES
SHOW COLUMNS FROM servers
SHOW INDEX FROM servers
SHOW CREATE TABLE servers
SHOW VARIABLES LIKE 'max_connections'
SHOW VARIABLES LIKE 'version'
DESCRIBE servers
EXPLAIN SELECT * FROM servers WHERE id = 3
SELECT hostname, ROW_NUMBER() OVER (PARTITION BY department_id ORDER BY cpu_cores DESC) AS rn FROM servers
SELECT hostname, RANK() OVER (ORDER BY cpu_cores DESC) FROM servers LIMIT 20
SELECT hostname, DENSE_RANK() OVER (PARTITION BY status ORDER BY cpu_cores) FROM servers
SELECT id, cpu_cores, SUM(cpu_cores) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS moving FROM servers
SELECT id, cpu_cores, AVG(cpu_cores) OVER (PARTITION BY department_id) AS dept_avg FROM servers
SELECT id, LAG(cpu_cores) OVER (ORDER BY id) AS prev, LEAD(cpu_cores, 2) OVER (ORDER BY id) AS next2 FROM servers
SELECT id, FIRST_VALUE(hostname) OVER (PARTITION BY department_id ORDER BY id) FROM servers
SELECT id, LAST_VALUE(hostname) OVER (PARTITION BY department_id ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM servers
SELECT id, NTH_VALUE(hostname, 2) OVER (PARTITION BY department_id ORDER BY id) FROM servers
SELECT id, NTILE(4) OVER (ORDER BY cpu_cores) AS quartile FROM servers
SELECT id, PERCENT_RANK() OVER (ORDER BY cpu_cores), CUME_DIST() OVER (ORDER BY cpu_cores) FROM servers
SELECT department_id, MEDIAN(cpu_cores) OVER (PARTITION BY department_id) FROM servers
SELECT DISTINCT department_id, PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY cpu_cores) OVER (PARTITION BY department_id) FROM servers
SELECT severity, COUNT(*), SUM(COUNT(*)) OVER () AS total FROM incidents GROUP BY severity
WITH per_dept AS (SELECT department_id, COUNT(*) AS n FROM servers GROUP BY department_id) SELECT d.name, p.n FROM per_dept p JOIN departments d ON d.id = p.department_id
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 12) SELECT n FROM seq
WITH a AS (SELECT server_id, COUNT(*) AS c FROM incidents GROUP BY server_id), b AS (SELECT server_id, c, RANK() OVER (ORDER BY c DESC) AS r FROM a) SELECT * FROM b WHERE r <= 5
WITH monthly AS (SELECT DATE_FORMAT(opened_at, '%Y-%m') AS m, COUNT(*) AS n FROM incidents GROUP BY m) SELECT m, n, n - LAG(n) OVER (ORDER BY m) AS delta FROM monthly
WITH x AS (SELECT id, cpu_cores FROM servers WHERE status = 'active') SELECT AVG(cpu_cores), MAX(cpu_cores), MIN(cpu_cores) FROM x
SELECT hostname FROM servers WHERE id IN (SELECT server_id FROM incidents WHERE severity = 4)
SELECT hostname FROM servers s WHERE EXISTS (SELECT 1 FROM applications a WHERE a.server_id = s.id)
SELECT hostname FROM servers s WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.server_id = s.id)
SELECT s.hostname, (SELECT COUNT(*) FROM incidents i WHERE i.server_id = s.id) AS incidents FROM servers s ORDER BY incidents DESC LIMIT 10
SELECT * FROM (SELECT department_id, AVG(cpu_cores) AS avg_cores FROM servers GROUP BY department_id) t WHERE avg_cores > 8
SELECT hostname FROM servers WHERE cpu_cores > (SELECT AVG(cpu_cores) FROM servers)
SELECT hostname FROM servers WHERE cpu_cores >= ALL (SELECT cpu_cores FROM servers WHERE department_id = 2)
SELECT hostname FROM servers WHERE cpu_cores > ANY (SELECT cpu_cores FROM servers WHERE department_id = 3)
SELECT JSON_EXTRACT(meta, '$.rack') AS rack, COUNT(*) FROM servers GROUP BY rack
SELECT JSON_UNQUOTE(JSON_EXTRACT(meta, '$.os')) AS os, COUNT(*) FROM servers GROUP BY os
SELECT JSON_VALUE(meta, '$.os') FROM servers LIMIT 5
SELECT hostname FROM servers WHERE JSON_CONTAINS(meta, '"linux"', '$.os')
SELECT JSON_OBJECT('host', hostname, 'cores', cpu_cores) FROM servers LIMIT 3
SELECT JSON_ARRAYAGG(hostname) FROM servers WHERE id < 5
SELECT JSON_OBJECTAGG(hostname, cpu_cores) FROM servers WHERE id < 5
SELECT JSON_KEYS(meta), JSON_LENGTH(meta), JSON_TYPE(meta), JSON_VALID(meta) FROM servers LIMIT 3
SELECT JSON_SET(meta, '$.rack', 0), JSON_REMOVE(meta, '$.os') FROM servers LIMIT 2
SELECT JSON_QUERY('{"a": [1, 2]}', '$.a'), JSON_EXISTS(meta, '$.rack') FROM servers LIMIT 2
SELECT j.os, COUNT(*) FROM servers s, JSON_TABLE(s.meta, '$' COLUMNS (os VARCHAR(10) PATH '$.os')) AS j GROUP BY j.os
SELECT JSON_ARRAY(1, 'a', NULL), JSON_DEPTH('[1, [2]]'), JSON_PRETTY('{"a":1}')
SELECT DATE(opened_at), COUNT(*) FROM incidents GROUP BY DATE(opened_at) ORDER BY 1 LIMIT 10
SELECT YEAR(opened_at), MONTH(opened_at), DAY(opened_at), HOUR(opened_at) FROM incidents LIMIT 5
SELECT DAYNAME(opened_at), DAYOFWEEK(opened_at), WEEK(opened_at), QUARTER(opened_at) FROM incidents LIMIT 5
SELECT DATEDIFF(MAX(opened_at), MIN(opened_at)) FROM incidents
SELECT TIMESTAMPDIFF(HOUR, MIN(opened_at), MAX(opened_at)) FROM incidents
SELECT TIMESTAMPADD(DAY, 7, opened_at) FROM incidents LIMIT 3
SELECT LAST_DAY(opened_at), MAKEDATE(2025, 32), STR_TO_DATE('2025-03-01', '%Y-%m-%d') FROM incidents LIMIT 2
SELECT DATE_FORMAT(opened_at, '%Y-%m-%d %H:00') AS hour_bucket, COUNT(*) FROM incidents GROUP BY hour_bucket LIMIT 10
SELECT UNIX_TIMESTAMP(opened_at), FROM_UNIXTIME(1700000000) FROM incidents LIMIT 2
SELECT CURDATE() - INTERVAL 30 DAY, NOW() - INTERVAL 1 HOUR, CURRENT_TIMESTAMP
SELECT opened_at FROM incidents WHERE opened_at BETWEEN '2025-01-02' AND '2025-01-03' ORDER BY opened_at
SELECT YEARWEEK(opened_at), COUNT(*) FROM incidents GROUP BY YEARWEEK(opened_at)
SELECT SEC_TO_TIME(3661), TIME_TO_SEC('01:01:01'), TIMEDIFF('12:00:00', '10:30:00')
SELECT CONVERT_TZ('2025-01-01 12:00:00', '+00:00', '+02:00')
SELECT hostname FROM servers WHERE hostname REGEXP '^srv-1[0-9]$'
SELECT hostname FROM servers WHERE hostname NOT REGEXP '[05]$' LIMIT 5
SELECT hostname FROM servers WHERE hostname RLIKE 'srv-2.5'
SELECT REGEXP_REPLACE(hostname, '[0-9]+', '#'), REGEXP_SUBSTR(hostname, '[0-9]+'), REGEXP_INSTR(hostname, '-') FROM servers LIMIT 3
SELECT hostname FROM servers WHERE hostname LIKE 'srv-1%' AND hostname NOT LIKE '%0'
SELECT CASE WHEN cpu_cores >= 12 THEN 'large' WHEN cpu_cores >= 6 THEN 'medium' ELSE 'small' END AS size, COUNT(*) FROM servers GROUP BY size
SELECT CASE status WHEN 'active' THEN 1 ELSE 0 END AS a, COUNT(*) FROM servers GROUP BY a
SELECT SUM(CASE WHEN severity >= 3 THEN 1 ELSE 0 END) / COUNT(*) AS high_share FROM incidents
SELECT IF(cpu_cores > 8, 'big', 'small'), IFNULL(department_id, 0), NULLIF(status, 'active'), COALESCE(NULL, hostname) FROM servers LIMIT 3
SELECT GREATEST(cpu_cores, 4), LEAST(cpu_cores, 8) FROM servers LIMIT 3
SELECT CONCAT(hostname, ':', cpu_cores), CONCAT_WS('/', status, department_id) FROM servers LIMIT 3
SELECT UPPER(hostname), LOWER(status), LENGTH(hostname), CHAR_LENGTH(hostname) FROM servers LIMIT 3
SELECT SUBSTRING(hostname, 5), SUBSTRING_INDEX(hostname, '-', -1), LEFT(hostname, 3), RIGHT(hostname, 2) FROM servers LIMIT 3
SELECT LPAD(id, 5, '0'), RPAD(status, 10, '.'), TRIM('  x  '), REPLACE(hostname, 'srv', 'host') FROM servers LIMIT 3
SELECT LOCATE('-', hostname), INSTR(hostname, '1'), REVERSE(hostname), REPEAT('=', 10) FROM servers LIMIT 3
SELECT GROUP_CONCAT(hostname ORDER BY id SEPARATOR ', ') FROM servers WHERE department_id = 1 AND id < 20
SELECT department_id, GROUP_CONCAT(DISTINCT status) FROM servers GROUP BY department_id
SELECT FORMAT(budget, 2), ROUND(budget / 1000, 1), TRUNCATE(budget, 0), CEIL(budget), FLOOR(budget) FROM departments
SELECT ABS(-3), MOD(10, 3), POWER(2, 10), SQRT(16), LOG10(1000), LN(EXP(1)), PI(), SIGN(-2)
SELECT STDDEV(cpu_cores), VARIANCE(cpu_cores), STDDEV_SAMP(cpu_cores), VAR_POP(cpu_cores) FROM servers
SELECT BIT_AND(cpu_cores), BIT_OR(cpu_cores), BIT_XOR(cpu_cores) FROM servers
SELECT CAST(budget AS SIGNED), CAST('2025-01-01' AS DATE), CONVERT(budget, CHAR), CAST(id AS CHAR(10)) FROM departments
SELECT HEX(hostname), MD5(hostname), SHA2(hostname, 256), CRC32(hostname), TO_BASE64(hostname) FROM servers LIMIT 2
SELECT COUNT(DISTINCT department_id), COUNT(DISTINCT status, department_id) FROM servers
SELECT s.hostname, a.name FROM servers s JOIN applications a ON a.server_id = s.id ORDER BY s.id LIMIT 10
SELECT s.hostname, a.name FROM servers s LEFT JOIN applications a ON a.server_id = s.id WHERE a.id IS NULL LIMIT 10
SELECT d.name, a.name FROM departments d JOIN servers s ON s.department_id = d.id JOIN applications a ON a.server_id = s.id LIMIT 10
SELECT s.hostname FROM servers s RIGHT JOIN departments d ON d.id = s.department_id LIMIT 5
SELECT a.id, b.id FROM servers a JOIN servers b ON a.department_id = b.department_id AND a.id < b.id LIMIT 5
SELECT hostname FROM servers WHERE department_id = 1 UNION SELECT name FROM applications WHERE id < 5
SELECT id FROM servers WHERE id < 10 UNION ALL SELECT id FROM applications WHERE id < 10 ORDER BY id
SELECT id FROM servers INTERSECT SELECT server_id FROM applications
SELECT id FROM servers EXCEPT SELECT server_id FROM incidents
SELECT status, COUNT(*) FROM servers GROUP BY status HAVING COUNT(*) > 10
SELECT department_id, AVG(cpu_cores) AS a FROM servers GROUP BY department_id HAVING a > 5 ORDER BY a DESC
SELECT * FROM servers ORDER BY cpu_cores DESC, id LIMIT 5 OFFSET 10
SELECT SQL_CALC_FOUND_ROWS id FROM servers LIMIT 3
SELECT id FROM servers LIMIT 2, 3
SELECT VERSION(), DATABASE(), CURRENT_USER(), CONNECTION_ID()
SELECT 1 + 1, 7 DIV 2, 7 / 2, 2 * 3.5, -id FROM servers LIMIT 1
SELECT id FROM servers WHERE status IN ('active', 'retired') AND cpu_cores BETWEEN 4 AND 8 LIMIT 5
SELECT id FROM servers WHERE department_id IS NOT NULL AND NOT (status <=> 'retired') LIMIT 5
SELECT UUID() IS NOT NULL, RAND() < 2
SELECT severity, COUNT(*) AS n, ROUND(100 * COUNT(*) / SUM(COUNT(*)) OVER (), 1) AS pct FROM incidents GROUP BY severity
SELECT server_id, COUNT(*) AS n FROM incidents GROUP BY server_id ORDER BY n DESC, server_id LIMIT 10
SELECT FIELD(status, 'active', 'retired'), FIND_IN_SET('b', 'a,b,c'), ELT(2, 'x', 'y') FROM servers LIMIT 2
SELECT STRCMP(hostname, 'srv-5'), SOUNDEX(hostname), ASCII(hostname), ORD(hostname) FROM servers LIMIT 2
SELECT INET_ATON('10.0.0.1'), INET_NTOA(167772161), IS_IPV4('10.0.0.1')
SELECT NVL(department_id, -1), NVL2(department_id, 'yes', 'no') FROM servers LIMIT 2
VALUES (1, 'a'), (2, 'b')
