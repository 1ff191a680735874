{#- User-supplied candidate lists named by the `extra_candidates` var (CSV or Parquet with name, ra,
    dec and a grade; column names matched case-insensitively with the aliases of
    candidate_list_aliases). The pre-hook names the file, row and column of any problem. -#}
{{ config(pre_hook="{{ validate_candidate_lists(var('extra_candidates', [])) }}") }}

{%- set lists = var('extra_candidates', []) %}

with

{% if lists | length == 0 -%}
    source as (

        select
            cast(null as string) as name,
            cast(null as double) as ra,
            cast(null as double) as dec,
            cast(null as string) as grade,
            cast(null as string) as catalog,
            cast(null as bigint) as file_row_number
        where false

    ),
{%- else -%}
source as (

    {%- for path in lists %}
    {%- set cols = candidate_list_columns(path) %}
    select
        cast({{ cols['name'] }} as string) as name,
        cast({{ cols['ra'] }} as double) as ra,
        cast({{ cols['dec'] }} as double) as dec,
        {{ normalised_grade(cols['grade']) }} as grade,
        {{ sql_string(path) }} as catalog,
        file_row_number
    from {{ candidate_list_reader(path) }}
    {{ "union all" if not loop.last }}
    {%- endfor %}

),
{%- endif %}

renamed as (

    select
        catalog || ':' || cast(file_row_number as string) as candidate_id,
        name,
        ra,
        dec,
        {{ desi_name_ra('name') }} as name_ra,
        {{ desi_name_dec('name') }} as name_dec,
        grade,
        catalog

    from source

)

select * from renamed
