-- Positives with their split and sampling stratum, by the HEALPix pixel int_lens_candidates_matched
-- computed (the DR10 counterpart's position when matched, else the candidate's).
-- Every matched positive gets a type bin and a stratum. One whose counterpart TYPE is outside
-- type_bins is not training-eligible (exclusion_reason 'type_not_in_type_bins:<TYPE>'; no
-- negatives are sampled for it) unless fallback_type_bin names a bin to stratify it under.

{%- set fallback = var('fallback_type_bin', none) %}

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
        is_matched and type not in ({{ sql_string_list(var('type_bins')) }}) as type_outside_bins

    from matched

),

binned as (

    select
        *,
        case
            when not is_matched then null
            when not type_outside_bins then type
            {%- if fallback is not none %}
                else '{{ fallback }}'
            {%- else %}
                else type
            {%- endif %}
        end as type_bin,
        case
            when not is_matched then 'no_dr10_counterpart'
            {%- if fallback is none %}
                when type_outside_bins then 'type_not_in_type_bins:' || type
            {%- endif %}
        end as exclusion_reason

    from located

),

final as (

    select
        binned.*,
        binned.exclusion_reason is null as is_training_eligible,
        splits.split,
        case
            when binned.is_matched
                then {{ stratum_key('splits.split', 'binned.type_bin', 'binned') }}
        end as stratum,
        case when binned.is_matched then {{ stratum_bin_indices('binned') }} end as bin_indices

    from binned
    inner join splits on splits.healpix = binned.healpix

)

select * from final
