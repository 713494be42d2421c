"""Raw catalog rows, shaped exactly like the `datasets` schemas, for the entity golden tests.

One database `shop` with schemas `sales` and `archive`; every relation kind and the column
variants the extractor has to map. Values are what the SQL in `pg_metadata/catalog/sql` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from pg_metadata.atlan.entities import AtlanContext
from pg_metadata.catalog.datasets import (
    COLUMNS,
    DATABASES,
    LINEAGE,
    PROCEDURES,
    SCHEMAS,
    TABLES,
    Dataset,
)

CTX = AtlanContext(
    connection_qualified_name="default/postgres/1717000000",
    connection_name="prod-pg",
    tenant_id="default",
    workflow_name="<wf>",
    run_id="<run>",
    run_at_ms=1717000123456,
)


def raw(dataset: Dataset, *bases: Mapping[str, Any], **values: Any) -> dict[str, Any]:
    """A row with exactly the dataset's columns (unset ones None), type-checked by Arrow.

    ``bases`` are merged left to right, then ``values`` win.
    """
    values = {k: v for base in bases for k, v in base.items()} | values
    unknown = set(values) - set(dataset.column_names)
    assert not unknown, f"not columns of {dataset.name}: {sorted(unknown)}"
    row = {name: values.get(name) for name in dataset.column_names}
    (checked,) = pa.Table.from_pylist([row], schema=dataset.schema).to_pylist()
    assert list(checked) == dataset.column_names
    return checked


# --- databases --------------------------------------------------------------------------------

DATABASE_ROWS: dict[str, tuple[dict[str, Any], int]] = {
    "shop_with_comment": (
        raw(
            DATABASES,
            database_oid=16384,
            database_name="shop",
            owner="shop_owner",
            encoding="UTF8",
            collation="C.UTF-8",
            ctype="C.UTF-8",
            comment="  The <em>main</em>\n\tshop   database ",
            size_bytes=8_142_371,
            connection_limit=-1,
            server_version="16.3",
        ),
        2,
    ),
    "bare_database": (
        raw(
            DATABASES,
            database_oid=16999,
            database_name="crm",
            owner="postgres",
            encoding="UTF8",
            collation="C",
            ctype="C",
            size_bytes=7_500_000,
            connection_limit=10,
            server_version="16.3",
        ),
        0,
    ),
}

# --- schemas ----------------------------------------------------------------------------------

SCHEMA_ROWS: dict[str, dict[str, Any]] = {
    "sales": raw(
        SCHEMAS,
        database_name="shop",
        schema_oid=16390,
        schema_name="sales",
        owner="shop_owner",
        comment="Sales <b>data</b>",
        table_count=4,
        views_count=2,
        partition_count=3,
    ),
    "archive_no_comment": raw(
        SCHEMAS,
        database_name="shop",
        schema_oid=16391,
        schema_name="archive",
        owner="postgres",
        table_count=0,
        views_count=0,
        partition_count=1,
    ),
}

# --- tables -----------------------------------------------------------------------------------

_TABLE = dict(
    database_name="shop",
    schema_name="sales",
    owner="shop_owner",
    persistence="p",
    is_typed=False,
    is_insertable_into=True,
    is_partition=False,
    is_partitioned=False,
    parent_selected=False,
    root_selected=False,
)
_ORDERS_PARENT = dict(
    parent_schema="sales",
    parent_name="orders",
    parent_is_partition=False,
    parent_selected=True,
    partition_depth=1,
    root_schema="sales",
    root_name="orders",
    root_selected=True,
)

TABLE_ROWS: dict[str, dict[str, Any]] = {
    "plain_table_html_comment": raw(
        TABLES,
        _TABLE,
        table_oid=16400,
        table_name="customers",
        sql_name="customers",
        table_kind="r",
        table_type="TABLE",
        comment="  <p>Customer <b>master</b>\n\n   data</p>\t<br/> ",
        column_count=3,
        row_count=1200,
        size_bytes=106_496,
    ),
    "unlogged_never_analysed": raw(
        TABLES,
        _TABLE,
        persistence="u",
        table_oid=16401,
        table_name="staging_events",
        sql_name="staging_events",
        table_kind="r",
        table_type="TABLE",
        column_count=1,
        size_bytes=8192,
    ),
    "range_partitioned_parent": raw(
        TABLES,
        _TABLE,
        table_oid=16410,
        table_name="orders",
        sql_name="orders",
        table_kind="p",
        table_type="PARTITIONED TABLE",
        comment="Customer orders",
        column_count=4,
        row_count=5000,
        size_bytes=409_600,
        is_partitioned=True,
        partition_strategy="r",
        partition_key="RANGE (ordered_at)",
        partition_key_column_count=1,
        partition_key_attnums="3",
        partition_count=2,
    ),
    "foreign_table": raw(
        TABLES,
        _TABLE,
        table_oid=16430,
        table_name="remote_orders",
        sql_name="remote_orders",
        table_kind="f",
        table_type="FOREIGN TABLE",
        column_count=2,
        foreign_server="legacy_srv",
        foreign_data_wrapper="postgres_fdw",
        foreign_options="schema_name=public, table_name=orders",
    ),
}

PARTITION_ROWS: dict[str, dict[str, Any]] = {
    "first_level_leaf_partition": raw(
        TABLES,
        _TABLE,
        _ORDERS_PARENT,
        table_oid=16411,
        table_name="orders_2023",
        sql_name="orders_2023",
        table_kind="r",
        table_type="TABLE",
        column_count=4,
        row_count=2000,
        size_bytes=163_840,
        is_partition=True,
        partition_bound="FOR VALUES FROM ('2023-01-01 00:00:00') TO ('2024-01-01 00:00:00')",
    ),
    "first_level_partition_itself_partitioned": raw(
        TABLES,
        _TABLE,
        _ORDERS_PARENT,
        table_oid=16412,
        table_name="orders_2024",
        sql_name="orders_2024",
        table_kind="p",
        table_type="PARTITIONED TABLE",
        column_count=4,
        row_count=3000,
        size_bytes=245_760,
        is_partition=True,
        is_partitioned=True,
        partition_strategy="l",
        partition_key="LIST (region)",
        partition_key_column_count=1,
        partition_key_attnums="4",
        partition_count=1,
        partition_bound="FOR VALUES FROM ('2024-01-01 00:00:00') TO ('2025-01-01 00:00:00')",
    ),
    "sub_partition": raw(
        TABLES,
        _TABLE,
        _ORDERS_PARENT,
        parent_name="orders_2024",
        parent_is_partition=True,
        partition_depth=2,
        table_oid=16413,
        table_name="orders_2024_eu",
        sql_name="orders_2024_eu",
        table_kind="r",
        table_type="TABLE",
        column_count=4,
        row_count=3000,
        size_bytes=245_760,
        is_partition=True,
        partition_bound="FOR VALUES IN ('EU')",
    ),
    "partition_of_unselected_parent": raw(
        TABLES,
        _TABLE,
        schema_name="archive",
        owner="postgres",
        parent_schema="legacy",
        parent_name="orders_old",
        parent_is_partition=False,
        parent_selected=False,
        partition_depth=1,
        root_schema="legacy",
        root_name="orders_old",
        root_selected=False,
        table_oid=16440,
        table_name="orders_2022",
        sql_name="orders_2022",
        table_kind="r",
        table_type="TABLE",
        column_count=4,
        row_count=0,
        size_bytes=0,
        is_partition=True,
        partition_bound="FOR VALUES FROM ('2022-01-01 00:00:00') TO ('2023-01-01 00:00:00')",
    ),
}

VIEW_ROWS: dict[str, dict[str, Any]] = {
    "view": raw(
        TABLES,
        _TABLE,
        table_oid=16420,
        table_name="order_totals",
        sql_name="order_totals",
        table_kind="v",
        table_type="VIEW",
        comment="Totals per customer",
        column_count=2,
        size_bytes=0,
        is_insertable_into=False,
        view_definition=(
            " SELECT customer_id,\n    sum(amount) AS total\n   FROM sales.orders\n"
            "  GROUP BY customer_id;"
        ),
    ),
}

MATERIALISED_VIEW_ROWS: dict[str, dict[str, Any]] = {
    "materialized_view": raw(
        TABLES,
        _TABLE,
        table_oid=16421,
        table_name="daily_revenue",
        sql_name="daily_revenue",
        table_kind="m",
        table_type="MATERIALIZED VIEW",
        column_count=2,
        row_count=365,
        size_bytes=16_384,
        is_insertable_into=False,
        view_definition=(
            " SELECT ordered_at::date AS day,\n    sum(amount) AS revenue\n"
            "   FROM sales.orders\n  GROUP BY (ordered_at::date);"
        ),
    ),
}

# --- columns ----------------------------------------------------------------------------------

_COLUMN = dict(
    database_name="shop",
    schema_name="sales",
    table_is_partition=False,
    is_nullable=True,
    is_generated=False,
    is_identity=False,
    is_primary=False,
    is_foreign=False,
    is_unique=False,
    is_partition_key=False,
)
_CUSTOMERS = dict(table_oid=16400, table_name="customers", table_kind="r")
_ORDERS = dict(table_oid=16410, table_name="orders", table_kind="p")
_INT4 = dict(
    data_type="int4",
    formatted_type="integer",
    type_name="integer",
    type_category="N",
    numeric_precision=32,
    numeric_precision_radix=2,
    numeric_scale=0,
)
_NUMERIC_12_2 = dict(
    data_type="numeric",
    formatted_type="numeric(12,2)",
    type_name="numeric",
    type_category="N",
    numeric_precision=12,
    numeric_precision_radix=10,
    numeric_scale=2,
)

COLUMN_ROWS: dict[str, dict[str, Any]] = {
    "serial_pk_int4": raw(
        COLUMNS,
        _COLUMN,
        _CUSTOMERS,
        _INT4,
        column_name="customer_id",
        ordinal_position=1,
        is_nullable=False,
        default_value="nextval('sales.customers_customer_id_seq'::regclass)",
        is_primary=True,
        comment="Surrogate <i>key</i>",
    ),
    "varchar_255_unique": raw(
        COLUMNS,
        _COLUMN,
        _CUSTOMERS,
        column_name="email",
        ordinal_position=2,
        data_type="varchar",
        formatted_type="character varying(255)",
        type_name="character varying",
        type_category="S",
        max_length=255,
        octet_length=1020,
        is_unique=True,
        collation="C",
    ),
    "generated_column": raw(
        COLUMNS,
        _COLUMN,
        _CUSTOMERS,
        column_name="email_domain",
        ordinal_position=3,
        data_type="text",
        formatted_type="text",
        type_name="text",
        type_category="S",
        generation_expression="split_part((email)::text, '@'::text, 2)",
        is_generated=True,
        octet_length=1_073_741_824,
    ),
    "identity_column": raw(
        COLUMNS,
        _COLUMN,
        table_oid=16401,
        table_name="staging_events",
        table_kind="r",
        column_name="event_id",
        ordinal_position=1,
        data_type="int8",
        formatted_type="bigint",
        type_name="bigint",
        type_category="N",
        is_nullable=False,
        is_identity=True,
        identity_generation="ALWAYS",
        identity_cycle=False,
        numeric_precision=64,
        numeric_precision_radix=2,
        numeric_scale=0,
        is_primary=True,
    ),
    "numeric_12_2_with_default": raw(
        COLUMNS,
        _COLUMN,
        _ORDERS,
        _NUMERIC_12_2,
        column_name="amount",
        ordinal_position=2,
        is_nullable=False,
        default_value="0",
    ),
    "partition_key_column": raw(
        COLUMNS,
        _COLUMN,
        _ORDERS,
        column_name="ordered_at",
        ordinal_position=3,
        data_type="timestamp",
        formatted_type="timestamp without time zone",
        type_name="timestamp without time zone",
        type_category="D",
        is_nullable=False,
        is_partition_key=True,
        partition_order=1,
    ),
    "column_of_partition": raw(
        COLUMNS,
        _COLUMN,
        _NUMERIC_12_2,
        table_oid=16411,
        table_name="orders_2023",
        table_kind="r",
        table_is_partition=True,
        column_name="amount",
        ordinal_position=2,
        is_nullable=False,
        default_value="0",
    ),
    "column_of_view": raw(
        COLUMNS,
        _COLUMN,
        table_oid=16420,
        table_name="order_totals",
        table_kind="v",
        column_name="total",
        ordinal_position=2,
        data_type="numeric",
        formatted_type="numeric",
        type_name="numeric",
        type_category="N",
        numeric_precision_radix=10,
    ),
    "column_of_materialized_view": raw(
        COLUMNS,
        _COLUMN,
        table_oid=16421,
        table_name="daily_revenue",
        table_kind="m",
        column_name="day",
        ordinal_position=1,
        data_type="date",
        formatted_type="date",
        type_name="date",
        type_category="D",
    ),
}


# --- procedures: an overloaded pair, a procedure, an aggregate ------------------------------
_ROUTINE = dict(
    database_name="shop", schema_name="sales", owner="app_owner", security_definer=False
)
PROCEDURE_ROWS = {
    "function_overloaded_int": raw(
        PROCEDURES,
        _ROUTINE,
        procedure_oid=17001,
        procedure_name="total",
        argument_types="integer",
        is_overloaded=True,
        arguments="a integer",
        return_type="integer",
        kind="f",
        language="sql",
        volatility="i",
        body="SELECT a",
        definition="CREATE OR REPLACE FUNCTION sales.total(a integer)\n RETURNS integer\n"
        " LANGUAGE sql\n IMMUTABLE\nAS $function$SELECT a$function$\n",
        comment="The <b>total</b>  of one",
    ),
    "procedure_overloaded": raw(
        PROCEDURES,
        _ROUTINE,
        procedure_oid=17002,
        procedure_name="total",
        argument_types="numeric",
        is_overloaded=True,
        arguments="IN x numeric",
        kind="p",
        language="plpgsql",
        volatility="v",
        security_definer=True,
        body=" BEGIN NULL; END ",
        definition="CREATE OR REPLACE PROCEDURE sales.total(IN x numeric)\n"
        " LANGUAGE plpgsql\n SECURITY DEFINER\nAS $procedure$ BEGIN NULL; END $procedure$\n",
    ),
    "aggregate": raw(
        PROCEDURES,
        _ROUTINE,
        procedure_oid=17003,
        procedure_name="sumsq",
        argument_types="integer",
        is_overloaded=False,
        arguments="integer",
        return_type="integer",
        kind="a",
        language="internal",
        volatility="i",
        body="aggregate_dummy",
        definition="CREATE AGGREGATE sales.sumsq(integer) (SFUNC = int4pl, STYPE = integer, "
        "INITCOND = '0')",
    ),
}

# --- lineage: a join view and a materialized view over it; a source outside the filters ------
LINEAGE_ROWS = {
    "join_view": raw(
        LINEAGE,
        database_name="shop",
        schema_name="sales",
        view_oid=18001,
        view_name="order_totals",
        view_kind="v",
        columns='["customer", "total"]',
        sources='[["archive", "orders_2019", "r", false, false], ["sales", "customers", "r", '
        'false, true], ["sales", "orders", "p", false, true]]',
        used_columns='[["sales", "customers", "name"], ["sales", "orders", "amount"], '
        '["sales", "orders", "customer_id"], ["sales", "customers", "customer_id"]]',
    ),
    "materialised_view": raw(
        LINEAGE,
        database_name="shop",
        schema_name="sales",
        view_oid=18002,
        view_name="daily",
        view_kind="m",
        columns='["customer"]',
        sources='[["sales", "order_totals", "v", false, true]]',
        used_columns='[["sales", "order_totals", "customer"]]',
    ),
}
VIEW_DEFINITIONS = {
    18001: " SELECT c.name AS customer,\n    sum(o.amount) AS total\n   FROM (sales.orders o\n"
    "     JOIN sales.customers c ON ((c.customer_id = o.customer_id)))\n  GROUP BY c.name;",
    18002: " SELECT order_totals.customer\n   FROM sales.order_totals;",
}
