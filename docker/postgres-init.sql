-- One server, two databases: Airflow's metadata and the meterline warehouse. The warehouse's
-- schemas and roles are created by `meterline warehouse start` (airflow-init runs it).
create user airflow with password 'airflow';
create database airflow owner airflow;
create user meterline with password 'meterline' createrole;
create database meterline owner meterline;
