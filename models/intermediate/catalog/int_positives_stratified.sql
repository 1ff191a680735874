-- Positives with their HEALPix pixel, split and sampling stratum. The pixel comes from the DR10
-- counterpart's position when matched (the cutout is centred there), else the candidate's.
-- A counterpart whose TYPE is outside type_bins is stratified under fallback_type_bin.

with

matched as (

    select * from {{ ref('int_lens_candidates_matched') }}

),

splits as (

    select * from {{ ref('int_healpix_splits') }}

),

located as (

    select
        *,
        {{ healpix_nest('coalesce(dr10_ra, ra)', 'coalesce(dr10_dec, dec)', var('healpix_nside')) }} as healpix,
        case
            when type in ({{ sql_string_list(var('type_bins')) }}) then type
            when is_matched then '{{ var("fallback_type_bin") }}'
        end as type_bin,
        is_matched and type not in ({{ sql_string_list(var('type_bins')) }}) as type_outside_bins

    from matched

),

final as (

    select
        located.*,
        splits.split,
        case
            when located.is_matched
                then {{ stratum_key('splits.split', 'located.type_bin', 'located.nobs_z', 'located.psfsize_z') }}
        end as stratum

    from located
    inner join splits on splits.healpix = located.healpix

)

select * from final
