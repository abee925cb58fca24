-- One PostgreSQL, one database per bounded context: no context can read another's tables.
CREATE DATABASE metering;
CREATE DATABASE gateway;
CREATE DATABASE billing;
CREATE DATABASE payouts;
