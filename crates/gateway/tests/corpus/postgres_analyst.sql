-- header
-- name: smoke
SELECT 1;
