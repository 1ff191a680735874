{#- Readers and checks for user-supplied candidate lists (var `extra_candidates`). -#}

{#- A relation over one list, CSV or Parquet, with a file_row_number column (1-based data rows). -#}
{% macro candidate_list_reader(path) -%}
    {%- if path.endswith('.parquet') -%}
        (select *, file_row_number + 1 as file_row_number
         from read_parquet({{ sql_string(path) }}, file_row_number = true))
    {%- else -%}
        (select *, row_number() over () as file_row_number
         from read_csv({{ sql_string(path) }}, header = true, all_varchar = true))
    {%- endif -%}
{%- endmacro %}

{#- The column holding the grade: 'grade' if present, else 'tier'. -#}
{% macro candidate_list_grade_column(path) -%}
    {%- if execute -%}
        {%- set cols = run_query("describe select * from " ~ candidate_list_reader(path)).columns[0].values() | map('lower') | list -%}
        {{ return('grade' if 'grade' in cols else 'tier') }}
    {%- else -%}
        {{ return('grade') }}
    {%- endif -%}
{%- endmacro %}

{#- Fail with the file, row and column of any unusable candidate: missing columns, coordinates that
    are not numbers in range, grades other than A/B/C. -#}
{% macro validate_candidate_lists(paths) %}
  {%- if execute -%}
    {%- for path in paths -%}
      {%- set cols = run_query("describe select * from " ~ candidate_list_reader(path)).columns[0].values() | map('lower') | list -%}
      {%- set missing = [] -%}
      {%- for required in ['name', 'ra', 'dec'] -%}
        {%- if required not in cols %}{% do missing.append(required) %}{% endif -%}
      {%- endfor -%}
      {%- if 'grade' not in cols and 'tier' not in cols %}{% do missing.append('grade (or tier)') %}{% endif -%}
      {%- if missing -%}
        {{ exceptions.raise_compiler_error("Candidate list " ~ path ~ " lacks column(s): " ~ missing | join(', ')
            ~ ". Each list needs name, ra, dec (degrees) and grade A/B/C (or tier A/B).") }}
      {%- endif -%}
      {%- set grade_col = 'grade' if 'grade' in cols else 'tier' -%}
      {%- set bad -%}
        select file_row_number, name, cast(ra as varchar), cast(dec as varchar), cast({{ grade_col }} as varchar)
        from {{ candidate_list_reader(path) }}
        where try_cast(ra as double) is null or try_cast(dec as double) is null
            or isnan(try_cast(ra as double)) or isnan(try_cast(dec as double))
            or try_cast(ra as double) < 0 or try_cast(ra as double) > 360
            or try_cast(dec as double) < -90 or try_cast(dec as double) > 90
            or coalesce(upper(trim(cast({{ grade_col }} as varchar))), '') not in ('A', 'B', 'C')
            or name is null
        order by file_row_number
        limit 5
      {%- endset -%}
      {%- set rows = run_query(bad).rows -%}
      {%- if rows | length > 0 -%}
        {%- set lines = [] -%}
        {%- for r in rows -%}
          {%- do lines.append("  row " ~ r[0] ~ ": name=" ~ r[1] ~ " ra=" ~ r[2] ~ " dec=" ~ r[3] ~ " " ~ grade_col ~ "=" ~ r[4]) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error("Candidate list " ~ path ~ " has unusable rows (ra in [0, 360], dec in [-90, 90], "
            ~ grade_col ~ " in A/B/C, name not null):\n" ~ lines | join("\n")) }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{% endmacro %}
