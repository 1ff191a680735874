{#- User-supplied candidate lists named by the `extra_candidates` var (CSV or Parquet with name, ra,
    dec and a grade A/B/C or a tier A/B). The pre-hook names the file and column of any problem. -#}
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
    select
        cast(name as string) as name,
        cast(ra as double) as ra,
        cast(dec as double) as dec,
        upper(trim(cast({{ candidate_list_grade_column(path) }} as string))) as grade,
        '{{ path }}' as catalog,
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
        grade,
        catalog

    from source

)

select * from renamed
