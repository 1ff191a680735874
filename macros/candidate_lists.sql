{#- Readers and checks for user-supplied candidate lists (var `extra_candidates`), and the DESI-
    name parser shared with lenscat. -#}

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

{#- Accepted spellings of each needed column, matched case-insensitively: published tables write
    RA/DEC, ra_deg/dec_deg or lenscat's 'RA [deg]', and grades as grade, tier or lenscat's grading. -#}
{% macro candidate_list_aliases() -%}
    {{ return({
        'name': ['name'],
        'ra': ['ra', 'ra_deg', 'ra [deg]', 'raj2000'],
        'dec': ['dec', 'dec_deg', 'dec [deg]', 'dej2000', 'decj2000'],
        'grade': ['grade', 'tier', 'grading'],
    }) }}
{%- endmacro %}

{#- The list's real column name for each of name, ra, dec, grade (double-quoted for SQL), or a
    missing-column error naming the file and what is accepted. -#}
{% macro candidate_list_columns(path) -%}
    {%- if not execute -%}
        {{ return({'name': 'name', 'ra': 'ra', 'dec': 'dec', 'grade': 'grade'}) }}
    {%- endif -%}
    {%- set actual = run_query("describe select * from " ~ candidate_list_reader(path)).columns[0].values() | list -%}
    {%- set by_lower = {} -%}
    {%- for column in actual %}{% do by_lower.update({column | lower: column}) %}{% endfor -%}
    {%- set found = {} -%}
    {%- set missing = [] -%}
    {%- for key, aliases in candidate_list_aliases().items() -%}
        {%- set hits = aliases | select('in', by_lower) | list -%}
        {%- if hits -%}
            {%- do found.update({key: '"' ~ by_lower[hits[0]] ~ '"'}) -%}
        {%- else -%}
            {%- do missing.append(key ~ " (any of: " ~ aliases | join(', ') ~ ")") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if missing -%}
        {{ exceptions.raise_compiler_error("Candidate list " ~ path ~ " lacks column(s): " ~ missing | join('; ')
            ~ ". Column names match case-insensitively; grades are A/B/C (or confident/probable/possible). "
            ~ "Found columns: " ~ actual | join(', ')) }}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}

{#- Grade A/B/C from a grade, tier or grading value: A/B/C as given; lenscat's gradings map
    confident = A, probable = B (lenscat's probable includes Paper II/III grade C), possible = C.
    Anything else is null (and refused by validate_candidate_lists). -#}
{% macro normalised_grade(expr) -%}
    case
        when upper(trim(cast({{ expr }} as string))) in ('A', 'B', 'C') then upper(trim(cast({{ expr }} as string)))
        when lower(trim(cast({{ expr }} as string))) = 'confident' then 'A'
        when lower(trim(cast({{ expr }} as string))) = 'probable' then 'B'
        when lower(trim(cast({{ expr }} as string))) = 'possible' then 'C'
    end
{%- endmacro %}

{#- The position encoded in a name's first 'DESI-RRR.RRRR+DD.DDDD' part (aliases joined by ' | '
    are searched too); null when there is none. -#}
{% macro desi_name_ra(name) -%}
    try_cast(regexp_extract({{ name }}, 'DESI-([0-9]+[.][0-9]+)([+-][0-9]+[.][0-9]+)', 1) as double)
{%- endmacro %}

{% macro desi_name_dec(name) -%}
    try_cast(regexp_extract({{ name }}, 'DESI-([0-9]+[.][0-9]+)([+-][0-9]+[.][0-9]+)', 2) as double)
{%- endmacro %}

{#- Fail with the file, row and column of any unusable candidate: missing columns, coordinates that
    are not numbers in range, grades other than A/B/C (or confident/probable/possible). -#}
{% macro validate_candidate_lists(paths) %}
  {%- if execute -%}
    {%- for path in paths -%}
      {%- set cols = candidate_list_columns(path) -%}
      {%- set bad -%}
        select file_row_number, {{ cols['name'] }}, cast({{ cols['ra'] }} as string),
            cast({{ cols['dec'] }} as string), cast({{ cols['grade'] }} as string)
        from {{ candidate_list_reader(path) }}
        where try_cast({{ cols['ra'] }} as double) is null or try_cast({{ cols['dec'] }} as double) is null
            or isnan(try_cast({{ cols['ra'] }} as double)) or isnan(try_cast({{ cols['dec'] }} as double))
            or try_cast({{ cols['ra'] }} as double) < 0 or try_cast({{ cols['ra'] }} as double) > 360
            or try_cast({{ cols['dec'] }} as double) < -90 or try_cast({{ cols['dec'] }} as double) > 90
            or {{ normalised_grade(cols['grade']) }} is null
            or {{ cols['name'] }} is null
        order by file_row_number
        limit 5
      {%- endset -%}
      {%- set rows = run_query(bad).rows -%}
      {%- if rows | length > 0 -%}
        {%- set lines = [] -%}
        {%- for r in rows -%}
          {%- do lines.append("  row " ~ r[0] ~ ": name=" ~ r[1] ~ " ra=" ~ r[2] ~ " dec=" ~ r[3] ~ " " ~ cols['grade'] ~ "=" ~ r[4]) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error("Candidate list " ~ path ~ " has unusable rows (ra in [0, 360], dec in [-90, 90], "
            ~ cols['grade'] ~ " in A/B/C or confident/probable/possible, name not null):\n" ~ lines | join("\n")) }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{% endmacro %}
