{#-
  Fail the build, naming the file and the problem, when the sweep inputs are unusable:
  no file matches the glob, a required column is missing or has the wrong type
  (seed `sweep_required_columns`), a coordinate is NaN/null/out of range, a key would overflow
  galaxy_id, (release, brickid, objid) is duplicated (naming every file and row), or a page of a
  needed column does not decode. Rows count from 1. Runs as a pre-hook of stg_dr10__sweeps so
  nothing downstream is built from garbage. Files that passed are remembered by fingerprint in
  the table sweep_validation_cache and not read again until they change. Row checks can be
  switched off with `validate_sweep_rows: false` for trusted inputs.
-#}
{% macro validate_sweeps(sweeps_glob) %}
    {{ return(adapter.dispatch('validate_sweeps', 'stronglens')(sweeps_glob)) }}
{% endmacro %}

{% macro default__validate_sweeps(sweeps_glob) %}
  {%- if execute -%}
    {%- set how_to_fix = "Fix or remove the file, or point the `sweeps` var / STRONGLENS_SWEEPS at other files." -%}
    {%- set files = run_query("select count(*) from glob(" ~ sql_string(sweeps_glob) ~ ")") -%}
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
          from parquet_schema({{ sql_string(sweeps_glob) }})
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
      {{ _validate_sweep_rows(sweeps_glob, how_to_fix) }}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}

{#- The row-level checks, with a cache: every page of the needed columns decodes, coordinates and
    keys are valid, and no key repeats. A file whose fingerprint (size, mtime, footer hash; see
    stronglens.sweep_validation) passed before with the same required columns is not read again;
    the duplicate check runs over the whole set unless the same set passed before, and compares
    only the changed files' keys when the unchanged files passed together. Errors name every file
    and 1-based row. -#}
{% macro _validate_sweep_rows(sweeps_glob, how_to_fix) %}
    {%- set columns = run_query("select column_name from " ~ ref('sweep_required_columns')
        ~ " order by column_name").columns[0].values() | list -%}
    {%- set cache = target.database ~ '.' ~ target.schema ~ '.sweep_validation_cache' -%}
    {%- do run_query("create table if not exists " ~ cache ~ " (kind varchar, cache_key varchar,"
        ~ " file_name varchar, validated_at timestamp with time zone)") -%}
    {#- the checks' version: a change of the required columns or of this macro re-validates everything -#}
    {%- set version = local_md5('v1|' ~ columns | join(',')) -%}
    {%- set listing_sql -%}
      with
      listing as (
          select file, file || '|' || stronglens_sweep_fingerprint(file) || '|{{ version }}' as cache_key
          from glob({{ sql_string(sweeps_glob) }})
      )
      select listing.file, listing.cache_key, cached.cache_key is not null as is_cached
      from listing
      left join (select distinct cache_key from {{ cache }} where kind = 'file') as cached
          on cached.cache_key = listing.cache_key
      order by listing.file
    {%- endset -%}
    {%- set listing = run_query(listing_sql) -%}
    {%- set changed = [] -%}
    {%- set changed_keys = [] -%}
    {%- set unchanged_keys = [] -%}
    {%- for row in listing.rows -%}
      {%- if row[2] -%}
        {%- do unchanged_keys.append(row[1]) -%}
      {%- else -%}
        {%- do changed.append(row[0]) -%}
        {%- do changed_keys.append(row[1]) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- set set_key = local_md5(listing.columns[1].values() | join('\n')) -%}
    {%- set previous_key = local_md5(unchanged_keys | join('\n')) -%}
    {%- set known_sets = run_query("select distinct cache_key from " ~ cache ~ " where kind = 'set' and cache_key in ('"
        ~ set_key ~ "', '" ~ previous_key ~ "')").columns[0].values() | list -%}
    {%- if changed | length == 0 and set_key in known_sets -%}
      {{ log("Sweep validation: all " ~ (listing.rows | length) ~ " files unchanged since they passed (cache).", info=true) }}
      {{ return('') }}
    {%- endif -%}
    {%- set changed_list -%}
      [{%- for f in changed %}'{{ f | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}]
    {%- endset -%}

    {%- if changed -%}
      {#- 1. every page of the needed columns decodes (one call per file) -#}
      {%- set decode_sql -%}
        select file, problem
        from (
            select file, stronglens_decode_sweep(file, '{{ columns | join(",") }}') as problem
            from unnest({{ changed_list }}) as changed (file)
        )
        where problem != ''
        order by file
      {%- endset -%}
      {%- set problems = run_query(decode_sql) -%}
      {%- if problems.rows | length > 0 -%}
        {%- set lines = [] -%}
        {%- for row in problems.rows -%}
          {%- do lines.append("  " ~ row[0] ~ ": " ~ row[1]) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error(
            "Sweep decode check failed: " ~ (lines | length) ~ " file(s) hold pages that do not decode "
            ~ "(corrupt or truncated):\n" ~ (lines | join("\n")) ~ "\n" ~ how_to_fix) }}
      {%- endif -%}

      {#- 2. coordinates and key ranges of the changed files -#}
      {%- set rows_sql -%}
        with
        sweeps as (
            select filename, file_row_number + 1 as file_row, release, brickid, objid, ra, dec
            from read_parquet({{ changed_list }}, filename = true, file_row_number = true)
        ),
        bad_coordinates as (
            select
                filename,
                file_row,
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
                file_row,
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
        )
        select * from bad_coordinates
        union all select * from bad_keys
        order by filename, file_row
      {%- endset -%}
      {%- set problems = run_query(rows_sql) -%}
      {%- if problems.rows | length > 0 -%}
        {%- set lines = [] -%}
        {%- for row in problems.rows -%}
          {%- do lines.append("  " ~ row[0] ~ " row " ~ row[1] ~ ": " ~ row[2] ~ ": " ~ row[3]) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error(
            "Sweep row check failed (first " ~ (lines | length) ~ " problems; rows count from 1):\n"
            ~ (lines | join("\n")) ~ "\n" ~ how_to_fix) }}
      {%- endif -%}
    {%- endif -%}

    {#- 3. duplicate keys: all of them, or only those of changed files when the rest passed together -#}
    {%- if set_key not in known_sets -%}
      {%- set only_changed = changed and unchanged_keys and previous_key in known_sets -%}
      {%- set duplicates_sql -%}
        with
        duplicated as (
            select {{ galaxy_id('release', 'brickid', 'objid') }} as key
            from read_parquet({{ sql_string(sweeps_glob) }})
            {%- if only_changed %}
            where {{ galaxy_id('release', 'brickid', 'objid') }} in (
                select {{ galaxy_id('release', 'brickid', 'objid') }} from read_parquet({{ changed_list }})
            )
            {%- endif %}
            group by 1
            having count(*) > 1
            limit 10
        )
        select release, brickid, objid, filename, file_row_number + 1 as file_row
        from read_parquet({{ sql_string(sweeps_glob) }}, filename = true, file_row_number = true)
        where {{ galaxy_id('release', 'brickid', 'objid') }} in (select key from duplicated)
        order by release, brickid, objid, filename, file_row
      {%- endset -%}
      {%- set rows = run_query(duplicates_sql).rows -%}
      {%- if rows | length > 0 -%}
        {%- set groups = {} -%}
        {%- set order = [] -%}
        {%- for row in rows -%}
          {%- set key = '(' ~ row[0] ~ ', ' ~ row[1] ~ ', ' ~ row[2] ~ ')' -%}
          {%- if key not in groups %}{% do groups.update({key: []}) %}{% do order.append(key) %}{% endif -%}
          {%- do groups[key].append(row[3] ~ " row " ~ row[4]) -%}
        {%- endfor -%}
        {%- set lines = [] -%}
        {%- for key in order -%}
          {%- do lines.append("  key " ~ key ~ " appears " ~ (groups[key] | length) ~ " times: "
              ~ groups[key] | join("; ")) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error(
            "Sweep duplicate-key check failed (release/brickid/objid must be unique; rows count from 1):\n"
            ~ (lines | join("\n")) ~ "\n" ~ how_to_fix) }}
      {%- endif -%}
    {%- endif -%}

    {#- everything passed: remember the changed files and the set -#}
    {%- set record_sql -%}
      insert into {{ cache }}
      {%- if changed_keys %}
      select 'file', cache_key, file_name, current_timestamp
      from (values
          {%- for key in changed_keys %}
          ('{{ key | replace("'", "''") }}', '{{ changed[loop.index0] | replace("'", "''") }}'){{ "," if not loop.last }}
          {%- endfor %}
      ) as passed (cache_key, file_name)
      union all
      {%- endif %}
      select 'set', '{{ set_key }}', null, current_timestamp
    {%- endset -%}
    {%- do run_query(record_sql) -%}
    {{ log("Sweep validation: " ~ (changed | length) ~ " of " ~ (listing.rows | length)
        ~ " files decoded and checked; " ~ (listing.rows | length - changed | length) ~ " unchanged (cache).", info=true) }}
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
