-- The negative pool: filtered galaxies minus exclusions, with one boolean per N2 hard-confuser
-- category, n2_category (first flag in n2_priority; null = N1), split, stratum and the sampling hash.

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
        coalesce(
            (kept.type = 'DEV' or (kept.type = 'SER' and kept.sersic >= {{ var('n2_ring_min_sersic') }}))
            and kept.flux_r >= {{ var('n2_ring_min_flux_r') }}, false
        ) as ring_proxy,
        coalesce(
            kept.ellipticity >= {{ var('n2_edge_on_min_ellipticity') }}
            and kept.shape_r >= {{ var('n2_edge_on_min_shape_r') }}, false
        ) as edge_on_proxy,
        coalesce(
            kept.g_minus_r <= {{ var('n2_blue_clumpy_max_g_minus_r') }}
            and kept.mag_r_dered <= {{ var('n2_blue_clumpy_max_mag_r') }}, false
        ) as blue_clumpy_proxy,
        coalesce(
            kept.shape_r >= {{ var('n2_large_galaxy_min_shape_r') }}
            and kept.flux_r >= {{ var('n2_large_galaxy_min_flux_r') }}, false
        ) as large_galaxy_proxy,
        mergers.galaxy_id is not null as merger_proxy,
        coalesce(
            kept.w1_minus_w2_vega >= {{ var('n2_agn_min_w1_minus_w2_vega') }}
            and kept.snr_w1 >= {{ var('n2_agn_min_snr') }}
            and kept.snr_w2 >= {{ var('n2_agn_min_snr') }}, false
        ) as agn_host_proxy,
        mergers.merger_neighbour_id,
        mergers.merger_neighbour_arcsec

    from kept
    left join mergers on mergers.galaxy_id = kept.galaxy_id

),

categorised as (

    select
        *,
        case
            {%- for category in var('n2_priority') %}
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
        {{ stratum_key('splits.split', 'categorised.type', 'categorised.nobs_z', 'categorised.psfsize_z') }}
            as stratum,
        {{ sample_hash('categorised.galaxy_id', var('sampling_seed')) }} as sample_hash

    from categorised
    inner join splits on splits.healpix = categorised.healpix

)

select * from final
