with

source as (

    select * from {{ ref('lenscat_desi_candidates') }}

),

renamed as (

    select
        'lenscat:' || regexp_extract(name, 'DESI-[0-9.]+[+-][0-9.]+', 0) as candidate_id,
        name,
        regexp_extract(name, 'DESI-[0-9.]+[+-][0-9.]+', 0) as desi_name,
        cast(ra_deg as double) as ra,
        cast(dec_deg as double) as dec,
        {{ desi_name_ra('name') }} as name_ra,
        {{ desi_name_dec('name') }} as name_dec,
        grading,
        {{ normalised_grade('grading') }} as grade,
        lenscat_type,
        -- lenscat joins the redshifts of aliases with ' | '; keep the first measured one.
        {{ first_double_token('zlens', ' | ') }} as zlens,
        ref as reference,
        'lenscat' as catalog

    from source

)

select * from renamed
