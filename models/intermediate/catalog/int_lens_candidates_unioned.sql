-- Every input candidate list in one shape: lenscat first, then the user lists in var order.

with

lenscat as (

    select
        candidate_id,
        name,
        ra,
        dec,
        name_ra,
        name_dec,
        grade,
        catalog,
        0 as catalog_rank
    from {{ ref('stg_lenscat__lens_candidates') }}

),

extra as (

    select
        candidate_id,
        name,
        ra,
        dec,
        name_ra,
        name_dec,
        grade,
        catalog,
        {%- set lists = var('extra_candidates', []) %}
        {%- if lists %}
        case catalog
            {%- for path in lists %}
            when {{ sql_string(path) }} then {{ loop.index }}
            {%- endfor %}
        end
        {%- else %}
            1
        {%- endif %} as catalog_rank
    from {{ ref('stg_extra__lens_candidates') }}

),

final as (

    select * from lenscat
    union all
    select * from extra

)

select * from final
