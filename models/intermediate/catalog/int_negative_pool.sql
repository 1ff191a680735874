-- The negative pool: filtered galaxies minus exclusions, with one boolean per N2 hard-confuser
-- category of the active preset (var n2_definitions; a category the preset does not use is false),
-- n2_category (first flag in the preset's priority; null = N1), split, stratum, the stratum's bin
-- indices (for the N1 top-up of short strata) and the sampling hash.

with

galaxies as (

    select * from {{ ref('int_galaxies_filtered') }}

),

excluded as (

    select galaxy_id from {{ ref('int_galaxies_excluded') }}

),

mergers as (

    select
        galaxy_id,
        merger_neighbour_id,
        merger_neighbour_arcsec
    from {{ ref('int_galaxies_merger_flagged') }}

),

splits as (

    select * from {{ ref('int_healpix_splits') }}

),

kept as (

    select galaxies.*
    from galaxies
    anti join excluded on excluded.galaxy_id = galaxies.galaxy_id

),

flagged as (

    select
        kept.*,
        {%- for category in n2_known_categories() %}
            {{ n2_flag(category, 'kept', 'mergers.galaxy_id is not null') }} as {{ category }},
        {%- endfor %}
        mergers.merger_neighbour_id,
        mergers.merger_neighbour_arcsec

    from kept
    left join mergers on mergers.galaxy_id = kept.galaxy_id

),

categorised as (

    select
        *,
        case
            {%- for category in n2_priority() %}
                when {{ category }} then '{{ category }}'
            {%- endfor %}
        end as n2_category

    from flagged

),

final as (

    select
        categorised.*,
        categorised.n2_category is not null as is_n2,
        splits.split,
        categorised.type as type_bin,
        {{ stratum_key('splits.split', 'categorised.type', 'categorised') }} as stratum,
        {{ stratum_bin_indices('categorised') }} as bin_indices,
        {{ sample_hash('categorised.galaxy_id', var('sampling_seed')) }} as sample_hash

    from categorised
    inner join splits on splits.healpix = categorised.healpix

)

select * from final
