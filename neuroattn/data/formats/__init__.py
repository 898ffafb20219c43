"""Adapters from the released layouts of real datasets to neuroattn's contracts.

fMRI adapters give a :class:`~neuroattn.data.betas.Betas` (packaged as
``neuroattn.data.fmri.SubjectBetas`` by their ``preprocess_subject``, written with
``neuroattn.data.fmri.write_subject``) and write the stimuli as PNGs for the feature stage:

=============  ================================================================================
``nsd``        :mod:`.nsd`: Natural Scenes Dataset session betas, design, ROI volumes, 73k brick
``algonauts``  :mod:`.algonauts`: Algonauts 2023 challenge folders (hemispheres, challenge ROIs)
``fmriprep``   :mod:`.fmriprep`: fMRIPrep derivatives (preproc bold, brain mask, confounds) as
               input to the single-trial GLM of ``neuroattn.data.fmri``
=============  ================================================================================

EEG adapters give ``(mne.Epochs, table)`` exactly like ``neuroattn.data.eeg.preprocess_subject``
(written with ``neuroattn.data.eeg.write_epochs``, read with ``neuroattn.data.eeg.load_epochs``):

=============  ================================================================================
``bnci2a``     :mod:`.bnci2a`: BCI Competition IV 2a GDF files + evaluation labels (.mat)
``eegmmidb``   :mod:`.eegmmidb`: PhysioNet EEG Motor Movement/Imagery EDF files
``moabb``      :mod:`.moabb`: any MOABB motor-imagery dataset (optional extra ``moabb``)
=============  ================================================================================

Submodules are imported on use (``from neuroattn.data.formats import nsd``).
"""
FMRI_FORMATS = ("bids", "nsd", "algonauts", "fmriprep")
EEG_FORMATS = ("bids", "bnci2a", "eegmmidb", "moabb")
