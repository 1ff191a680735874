{#-
  Engine-specific SQL, dispatched by adapter (duckdb__/spark__, default__ = DuckDB), so that every
  catalogue model is the same text on DuckDB and on Spark (dbt-spark). Each macro names the DuckDB
  construct it replaces; the Spark version returns the same values (tests/test_spark_parity.py
  compares the marts of both engines row for row).
-#}

{#- `string_agg(distinct expr, delimiter order by expr)`: the distinct values, sorted, joined. -#}
{% macro string_agg_distinct(expr, delimiter) -%}
    {{ return(adapter.dispatch('string_agg_distinct', 'stronglens')(expr, delimiter)) }}
{%- endmacro %}

{% macro default__string_agg_distinct(expr, delimiter) -%}
    string_agg(distinct {{ expr }}, '{{ delimiter }}' order by {{ expr }})
{%- endmacro %}

{% macro spark__string_agg_distinct(expr, delimiter) -%}
    array_join(array_sort(collect_set({{ expr }})), '{{ delimiter }}')
{%- endmacro %}

{#- The first token of `text_expr` split on the literal `delimiter` that parses as a finite double
    (NaN tokens skipped), as a DOUBLE; null when there is none. -#}
{% macro first_double_token(text_expr, delimiter) -%}
    {{ return(adapter.dispatch('first_double_token', 'stronglens')(text_expr, delimiter)) }}
{%- endmacro %}

{% macro default__first_double_token(text_expr, delimiter) -%}
    try_cast(
        list_filter(
            string_split({{ text_expr }}, '{{ delimiter }}'),
            token -> try_cast(token as double) is not null and not isnan(try_cast(token as double))
        )[1] as double
    )
{%- endmacro %}

{% macro spark__first_double_token(text_expr, delimiter) -%}
    {#- split() takes a regex: quote the delimiter; element_at(.., 1) is null on an empty array -#}
    element_at(
        filter(
            transform(split({{ text_expr }}, '\\Q{{ delimiter }}\\E'), token -> try_cast(token as double)),
            value -> value is not null and not isnan(value)
        ),
        1
    )
{%- endmacro %}

{#- The literal rows of a one-column inline table, e.g. categories of a report. -#}
{% macro values_table(values, column, alias) -%}
    (values {% for v in values %}('{{ v }}'){{ ", " if not loop.last }}{% endfor %}) as {{ alias }} ({{ column }})
{%- endmacro %}

{#- `*` without some columns, optionally qualified: `* exclude (..)` in DuckDB, `* except (..)`
    in Spark. -#}
{% macro star_except(columns, relation=none) -%}
    {{ return(adapter.dispatch('star_except', 'stronglens')(columns, relation)) }}
{%- endmacro %}

{% macro default__star_except(columns, relation) -%}
    {{ relation ~ '.' if relation }}* exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__star_except(columns, relation) -%}
    {{ relation ~ '.' if relation }}* except ({{ columns | join(', ') }})
{%- endmacro %}

{#- The sweep rows to stage: the dr10.sweeps source on DuckDB (read_parquet with filename); on
    Spark the same Parquet files, read by path (local, hdfs:// or s3a:// / EMR's s3://), with the
    file path as `filename`. -#}
{% macro sweeps_relation(source_relation) -%}
    {{ return(adapter.dispatch('sweeps_relation', 'stronglens')(source_relation)) }}
{%- endmacro %}

{% macro default__sweeps_relation(source_relation) -%}
    {{ source_relation }}
{%- endmacro %}

{% macro spark__sweeps_relation(source_relation) -%}
    (select *, _metadata.file_path as filename from parquet.`{{ sweeps_location() }}`)
{%- endmacro %}

{#- `as materialized (..)` of a CTE that is read more than once: DuckDB then computes it once;
    Spark has no such hint (its optimiser reuses exchanges), so the CTE is plain there. -#}
{% macro cte_materialized() -%}
    {{ return(adapter.dispatch('cte_materialized', 'stronglens')()) }}
{%- endmacro %}

{% macro default__cte_materialized() -%}
    materialized
{%- endmacro %}

{% macro spark__cte_materialized() -%}
{%- endmacro %}

{#- An integer list literal from SQL expressions: `[..]::integer[]` in DuckDB, `array(..)` cast to
    array<int> in Spark. -#}
{% macro int_array(expressions) -%}
    {{ return(adapter.dispatch('int_array', 'stronglens')(expressions)) }}
{%- endmacro %}

{% macro default__int_array(expressions) -%}
    [{{ expressions | join(', ') }}]::integer[]
{%- endmacro %}

{% macro spark__int_array(expressions) -%}
    cast(array({{ expressions | join(', ') }}) as array<int>)
{%- endmacro %}

{#- Sum of |a[i] - b[i]| over two equally long integer lists (`list_sum(list_transform(list_zip(..)))`
    in DuckDB, `aggregate(zip_with(..))` in Spark); null for empty lists on both engines. -#}
{% macro abs_diff_sum(a, b) -%}
    {{ return(adapter.dispatch('abs_diff_sum', 'stronglens')(a, b)) }}
{%- endmacro %}

{% macro default__abs_diff_sum(a, b) -%}
    list_sum(list_transform(list_zip({{ a }}, {{ b }}), x -> abs(x[1] - x[2])))
{%- endmacro %}

{% macro spark__abs_diff_sum(a, b) -%}
    case when size({{ a }}) > 0 then
        aggregate(zip_with({{ a }}, {{ b }}, (x, y) -> abs(x - y)), 0, (total, step) -> total + step)
    end
{%- endmacro %}

{#- `string_agg(expr, delimiter order by order_expr)`: every value, in order_expr order, joined. -#}
{% macro string_agg_ordered(expr, order_expr, delimiter) -%}
    {{ return(adapter.dispatch('string_agg_ordered', 'stronglens')(expr, order_expr, delimiter)) }}
{%- endmacro %}

{% macro default__string_agg_ordered(expr, order_expr, delimiter) -%}
    string_agg({{ expr }}, '{{ delimiter }}' order by {{ order_expr }})
{%- endmacro %}

{% macro spark__string_agg_ordered(expr, order_expr, delimiter) -%}
    array_join(
        transform(array_sort(collect_list(named_struct('k', {{ order_expr }}, 'v', {{ expr }}))), s -> s.v),
        '{{ delimiter }}'
    )
{%- endmacro %}
