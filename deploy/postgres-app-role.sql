-- Run once by the postgres image when it creates its data directory (docker-entrypoint-initdb.d).
-- The services connect as shadowlab_app: rows only, no ownership, so they cannot truncate decisions nor
-- disable or drop the triggers that keep them immutable. `shadowlab db upgrade --grant-app shadowlab_app`
-- (the migrate service, as the owner) grants it access to the tables. Change the password for real use.
CREATE ROLE shadowlab_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'shadowlab_app';
