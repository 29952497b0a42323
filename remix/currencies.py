"""The currencies a revenue event may be in: ISO 4217 codes of money.

Current codes, and codes withdrawn since 2020 that historical events (and their refunds) may still
carry. Not accepted: the codes for testing (XTS) and "no currency" (XXX), precious metals (XAU,
XAG, XPT, XPD), fund and settlement units (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW, XBA-XBD,
XDR, XSU, XUA): none of them is revenue a post earns. Without this list, any three letters made a
currency of the ledger, and a typo a balance of its own.
"""

_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
    KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
    RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
"""
ISO_4217_CODES = frozenset(_CODES.split())


def is_currency(code: str) -> bool:
    """Whether `code` (any case) is a currency a revenue event may be in."""
    return code.upper() in ISO_4217_CODES
