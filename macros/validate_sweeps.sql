{#-
  Fail the build, naming the file and the problem, when the sweep inputs are unusable:
  no file matches the glob, a required column is missing or has the wrong type
  (seed `sweep_required_columns`), a coordinate is NaN/null/out of range, a key would overflow
  galaxy_id, or (release, brickid, objid) is duplicated. Runs as a pre-hook of stg_dr10__sweeps so
  nothing downstream is built from garbage. Row checks can be switched off with
  `validate_sweep_rows: false` for trusted inputs at full DR10 scale.
-#}
{% macro validate_sweeps(sweeps_glob) %}
    {{ return(adapter.dispatch('validate_sweeps', 'stronglens')(sweeps_glob)) }}
{% endmacro %}

{% macro default__validate_sweeps(sweeps_glob) %}
  {%- if execute -%}
    {%- set how_to_fix = "Fix or remove the file, or point the `sweeps` var / STRONGLENS_SWEEPS at other files." -%}
    {%- set files = run_query("select count(*) from glob('" ~ sweeps_glob ~ "')") -%}
    {%- if files.rows[0][0] == 0 -%}
      {{ exceptions.raise_compiler_error(
          "No sweep files match '" ~ sweeps_glob ~ "'. Generate the embedded sky with "
          ~ "`stronglens synth --out <dir>` or convert real sweeps with `stronglens convert-sweeps`, "
          ~ "then set STRONGLENS_SWEEPS (or the `sweeps` var) to '<dir>/*.parquet'.") }}
    {%- endif -%}

    {%- set schema_sql -%}
      with
      file_schema as (
          select file_name, lower(name) as column_name, duckdb_type
          from parquet_schema('{{ sweeps_glob }}')
      ),
      files as (select distinct file_name from file_schema),
      required as (select column_name, accepted_types from {{ ref('sweep_required_columns') }}),
      problems as (
          select
              files.file_name,
              required.column_name,
              case
                  when file_schema.column_name is null then 'missing column'
                  else 'column has type ' || file_schema.duckdb_type
                      || ', expected ' || replace(required.accepted_types, '|', ' or ')
              end as problem
          from files
          cross join required
          left join file_schema
              on file_schema.file_name = files.file_name
              and file_schema.column_name = required.column_name
          where file_schema.column_name is null
              or not list_contains(string_split(required.accepted_types, '|'), file_schema.duckdb_type)
      )
      select file_name, column_name, problem from problems order by file_name, column_name limit 20
    {%- endset -%}
    {%- set problems = run_query(schema_sql) -%}
    {%- if problems.rows | length > 0 -%}
      {%- set lines = [] -%}
      {%- for row in problems.rows -%}
        {%- do lines.append("  " ~ row[0] ~ ": column '" ~ row[1] ~ "': " ~ row[2]) -%}
      {%- endfor -%}
      {{ exceptions.raise_compiler_error(
          "Sweep schema check failed (first " ~ (lines | length) ~ " problems):\n"
          ~ (lines | join("\n")) ~ "\n" ~ how_to_fix) }}
    {%- endif -%}

    {%- if var('validate_sweep_rows', true) -%}
      {%- set rows_sql -%}
        with
        sweeps as (
            select filename, file_row_number, release, brickid, objid, ra, dec
            from read_parquet('{{ sweeps_glob }}', filename = true, file_row_number = true)
        ),
        bad_coordinates as (
            select
                filename,
                file_row_number,
                case
                    when ra is null or isnan(ra) or ra < 0 or ra > 360 then 'ra'
                    else 'dec'
                end as column_name,
                'value ' || coalesce(cast(case
                    when ra is null or isnan(ra) or ra < 0 or ra > 360 then ra else dec
                end as varchar), 'NULL') || ' is not a valid coordinate' as problem
            from sweeps
            where ra is null or isnan(ra) or ra < 0 or ra > 360
                or dec is null or isnan(dec) or dec < -90 or dec > 90
            limit 10
        ),
        bad_keys as (
            select
                filename,
                file_row_number,
                'release/brickid/objid' as column_name,
                'key (' || coalesce(cast(release as varchar), 'NULL') || ', '
                    || coalesce(cast(brickid as varchar), 'NULL') || ', '
                    || coalesce(cast(objid as varchar), 'NULL')
                    || ') is null or out of range for galaxy_id' as problem
            from sweeps
            where release is null or brickid is null or objid is null
                or release < 0 or release > 32767
                or brickid < 0 or brickid >= 1000000 or objid < 0 or objid >= 1000000
            limit 10
        ),
        duplicate_keys as (
            -- one BIGINT per key (the galaxy_id packing; bad_keys guards its range) keeps the hash
            -- table small; the files of a duplicated key are looked up only when there is one
            select
                min(filename) as filename,
                min(file_row_number) as file_row_number,
                'release/brickid/objid' as column_name,
                'key (' || min(release) || ', ' || min(brickid) || ', ' || min(objid) || ') appears '
                    || count(*) || ' times (also in ' || max(filename) || ')' as problem
            from sweeps
            where {{ galaxy_id('release', 'brickid', 'objid') }} in (
                select {{ galaxy_id('release', 'brickid', 'objid') }}
                from read_parquet('{{ sweeps_glob }}')
                group by 1
                having count(*) > 1
                limit 10
            )
            group by release, brickid, objid
        )
        select * from bad_coordinates
        union all select * from bad_keys
        union all select * from duplicate_keys
        order by filename, file_row_number
    {%- endset -%}
      {%- set problems = run_query(rows_sql) -%}
      {%- if problems.rows | length > 0 -%}
        {%- set lines = [] -%}
        {%- for row in problems.rows -%}
          {%- do lines.append("  " ~ row[0] ~ " row " ~ row[1] ~ ": " ~ row[2] ~ ": " ~ row[3]) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error(
            "Sweep row check failed (first " ~ (lines | length) ~ " problems):\n"
            ~ (lines | join("\n")) ~ "\n" ~ how_to_fix) }}
      {%- endif -%}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}

{#- Spark: the row checks (coordinates, key range, duplicate keys naming every file and 1-based row)
    on the same Parquet files; Spark decodes every page of these columns while it scans them, and
    a schema mismatch fails the scan naming the file. -#}
{% macro spark__validate_sweeps(sweeps_glob) %}
  {%- if execute and var('validate_sweep_rows', true) -%}
    {%- set rows_sql -%}
      with
      sweeps as (
          select
              _metadata.file_path as filename,
              _metadata.row_index + 1 as file_row,
              release, brickid, objid, ra, dec
          from parquet.`{{ sweeps_glob }}`
      ),
      bad_rows as (
          select
              filename,
              file_row,
              case
                  when ra is null or isnan(ra) or ra < 0 or ra > 360
                      then 'ra: value ' || coalesce(cast(ra as string), 'NULL') || ' is not a valid coordinate'
                  when dec is null or isnan(dec) or dec < -90 or dec > 90
                      then 'dec: value ' || coalesce(cast(dec as string), 'NULL') || ' is not a valid coordinate'
                  else 'release/brickid/objid: key is null or out of range for galaxy_id'
              end as problem
          from sweeps
          where ra is null or isnan(ra) or ra < 0 or ra > 360
              or dec is null or isnan(dec) or dec < -90 or dec > 90
              or release is null or brickid is null or objid is null
              or release < 0 or release > 32767
              or brickid < 0 or brickid >= 1000000 or objid < 0 or objid >= 1000000
          limit 10
      ),
      duplicated as (
          select {{ galaxy_id('release', 'brickid', 'objid') }} as galaxy_id
          from sweeps
          group by 1
          having count(*) > 1
          limit 10
      ),
      duplicate_rows as (
          select
              sweeps.filename,
              sweeps.file_row,
              'release/brickid/objid: key (' || sweeps.release || ', ' || sweeps.brickid || ', '
                  || sweeps.objid || ') is duplicated' as problem
          from sweeps
          inner join duplicated
              on duplicated.galaxy_id = {{ galaxy_id('sweeps.release', 'sweeps.brickid', 'sweeps.objid') }}
      )
      select * from bad_rows
      union all
      select * from duplicate_rows
      order by filename, file_row
      limit 20
    {%- endset -%}
    {%- set problems = run_query(rows_sql) -%}
    {%- if problems.rows | length > 0 -%}
      {%- set lines = [] -%}
      {%- for row in problems.rows -%}
        {%- do lines.append("  " ~ row[0] ~ " row " ~ row[1] ~ ": " ~ row[2]) -%}
      {%- endfor -%}
      {{ exceptions.raise_compiler_error(
          "Sweep row check failed (first " ~ (lines | length) ~ " problems):\n" ~ (lines | join("\n"))
          ~ "\nFix or remove the file, or point the `sweeps` var / STRONGLENS_SWEEPS at other files.") }}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}
