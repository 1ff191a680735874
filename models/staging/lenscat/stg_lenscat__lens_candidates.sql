with

source as (

    select * from {{ ref('lenscat_desi_candidates') }}

),

renamed as (

    select
        'lenscat:' || regexp_extract(name, 'DESI-[0-9.]+[+-][0-9.]+') as candidate_id,
        name,
        regexp_extract(name, 'DESI-[0-9.]+[+-][0-9.]+') as desi_name,
        cast(ra_deg as double) as ra,
        cast(dec_deg as double) as dec,
        grading,
        case grading
            when 'confident' then 'A'
            when 'probable' then 'B'
        end as grade,
        lenscat_type,
        -- lenscat joins the redshifts of aliases with ' | '; keep the first measured one.
        try_cast(
            list_filter(
                string_split(zlens, ' | '), z -> try_cast(z as double) is not null
                and not isnan(try_cast(z as double))
            )[1
            ]
            as double
        ) as zlens,
        ref as reference,
        'lenscat' as catalog

    from source

)

select * from renamed
