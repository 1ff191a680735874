-- Injection hosts: TEST-split negatives whose cutout is stored and usable in every band, with the
-- seeing and depth they are binned by. Never train or validation samples (INTERFACES.md).

with

manifest as (

    select * from {{ ref('cutout_manifest') }}

),

cutouts as (

    select * from {{ ref('cutouts') }}
    where status = 'ok'

),

qa as (

    select * from {{ ref('cutout_qa') }}

),

unusable as (

    select distinct sample_id
    from qa
    where not is_usable

),

test_negatives as (

    select * from manifest
    where split = 'test' and label = 'negative'

),

final as (

    select
        test_negatives.sample_id,
        test_negatives.split,
        cutouts.path,
        test_negatives.type,
        test_negatives.n2_category,
        {%- for band in ['g', 'r', 'z'] %}
            test_negatives.psfsize_{{ band }},
            test_negatives.psfdepth_{{ band }},
        {%- endfor %}
        -2.5 * (log10(5.0 / sqrt(test_negatives.psfdepth_r)) - 9.0) as depth_mag_r

    from test_negatives
    inner join cutouts on cutouts.sample_id = test_negatives.sample_id
    where
        test_negatives.sample_id not in (select unusable.sample_id from unusable)
        and test_negatives.psfdepth_r > 0

)

select * from final
order by sample_id
