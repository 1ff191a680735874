-- Frame of suite `n2_per_type`: the N2 share of the sampled negatives per type bin (all splits),
-- so that no Tractor type's negatives are mostly confusers -- otherwise "ordinary galaxy of this
-- type" would be missing from training exactly where the positives are.
select
    type_bin,
    count(*) as n_negatives,
    avg(cast(is_n2 as integer)) as n2_share
from negatives
group by type_bin
