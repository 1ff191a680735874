-- Every sample of the cutout manifest with what training needs (label, weight, target, cutout
-- location) and, for those training must not use, why: the cutout was not stored, it has no QA row,
-- or it failed QA. training_manifest keeps the rows without a reason; training_exclusions counts the
-- others by reason.

with

cutout_manifest as (

    select * from {{ ref('cutout_manifest') }}

),

cutouts as (

    select * from {{ ref('cutouts') }}

),

cutout_qa as (

    select * from {{ ref('cutout_qa') }}

),

qa_verdicts as (

    -- The verdict is per cutout and repeated on each band row; bool_and guards against a mixed one.
    select
        sample_id,
        bool_and(is_usable) as is_usable,
        min(unusable_reason) as unusable_reason
    from cutout_qa
    group by sample_id

),

joined as (

    select
        cutout_manifest.sample_id,
        cutout_manifest.galaxy_id,
        cutout_manifest.label,
        cutout_manifest.tier,
        cutout_manifest.n2_category,
        cutout_manifest.type,
        cutout_manifest.split,
        cutout_manifest.stratum,
        cutouts.path as cutout_path,
        cutouts.sha256 as cutout_sha256,
        cutouts.status as cutout_status,
        cutouts.reason as cutout_reason,
        qa_verdicts.is_usable,
        qa_verdicts.unusable_reason
    from cutout_manifest
    left join cutouts on cutouts.sample_id = cutout_manifest.sample_id
    left join qa_verdicts on qa_verdicts.sample_id = cutout_manifest.sample_id

),

final as (

    select
        sample_id,
        galaxy_id,
        cast(label = 'positive' as integer) as label,
        tier,
        coalesce(n2_category, case when label = 'negative' then 'N1' end) as n2_category,
        type,
        split,
        stratum,
        cutout_path,
        cutout_sha256,
        case
            when tier = 'A' then {{ var('finder_weight_tier_a') }}
            when tier = 'B' then {{ var('finder_weight_tier_b') }}
            else {{ var('finder_weight_negative') }}
        end as sample_weight,
        -- `target` (a keyword) is the issue's name for the BCE target column.
        case
            when label = 'negative' then 0.0
            when tier = 'B' then 1.0 - {{ var('finder_tier_b_label_smoothing') }}
            else 1.0
        end as target,  -- noqa: RF04
        case
            when cutout_status is null then 'cutout not fetched'
            when cutout_status != 'ok' then 'cutout fetch failed: ' || coalesce(cutout_reason, 'no reason recorded')
            when is_usable is null then 'no QA row for the stored cutout'
            when not is_usable then 'failed QA: ' || coalesce(unusable_reason, 'no reason recorded')
        end as exclusion_reason
    from joined

)

select * from final
